// JSON parsing of Keras layer configs: real get_config() dicts from both Keras
// versions (the golden fixtures), serialized objects as each version resolves
// them (objects.json), defaults, ignored and unknown keys, flavors, and every
// error (errors.json records what real Keras does with each bad argument).
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/activation.hpp"
#include "core/config_json.hpp"
#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;

const std::string kDir = std::string(TCONV3D_TEST_DATA_DIR) + "/keras/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}
json read_json(const std::string& path) { return json::parse(read_text(path)); }

// Runs `f`, expects a tconv3d::Error naming `argument` whose message contains every `fragments`.
template <typename F>
void expect_error(F&& f, const std::string& argument, const std::vector<std::string>& fragments = {}) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming '" << argument << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
    for (const std::string& fragment : fragments)
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "'" << fragment << "' not in: " << e.what();
  }
}

void expect_config_error(const std::string& text, const std::string& argument,
                         const std::vector<std::string>& fragments = {}, std::optional<Flavor> flavor = {}) {
  SCOPED_TRACE(text);
  expect_error([&] { parse_layer_config(text, flavor); }, argument, fragments);
}

// --- Real configs -------------------------------------------------------------

TEST(RealConfigs, EveryFixtureParsesWithItsFlavorAndTheDialectIsReported) {
  const json index = read_json(kDir + "index.json");
  int tf = 0, k3 = 0;
  for (const json& c : index["cases"]) {
    const std::string text = read_text(kDir + c["name"].get<std::string>() + "/config.json");
    std::vector<std::string> warnings;
    const LayerConfig config = parse_layer_config(text, std::nullopt, &warnings);
    if (c["flavor"] == "tf_keras2") {
      ++tf;
      EXPECT_EQ(config.flavor, Flavor::kTfKeras2) << c["name"];
      ASSERT_EQ(warnings.size(), 1u) << c["name"];
      EXPECT_NE(warnings[0].find("tf_keras2"), std::string::npos) << warnings[0];
    } else {
      ++k3;
      EXPECT_EQ(config.flavor, Flavor::kKeras3) << c["name"];
      EXPECT_TRUE(warnings.empty()) << c["name"];
    }
    // Forcing a flavor overrides the dialect, with nothing to report.
    const Flavor other = config.flavor == Flavor::kKeras3 ? Flavor::kTfKeras2 : Flavor::kKeras3;
    std::vector<std::string> forced_warnings;
    try {
      EXPECT_EQ(parse_layer_config(text, other, &forced_warnings).flavor, other);
      EXPECT_TRUE(forced_warnings.empty());
    } catch (const Error& e) {
      // Only where the other flavor does not know the activation (celu is Keras 3 only, ReLU tf.keras only).
      EXPECT_EQ(e.argument(), "activation") << c["name"] << ": " << e.what();
    }
  }
  EXPECT_GT(tf, 20);
  EXPECT_GT(k3, 20);
}

TEST(RealConfigs, Keras3GetConfigValues) {
  const LayerConfig c = parse_layer_config(read_text(kDir + "keras3_same_op_even/config.json"));
  EXPECT_EQ(c.filters, 5);
  EXPECT_EQ(c.kernel_size, (Triple{2, 4, 2}));
  EXPECT_EQ(c.strides, (Triple{2, 3, 2}));
  EXPECT_EQ(c.padding, Padding::kSame);
  ASSERT_TRUE(c.output_padding.has_value());
  EXPECT_EQ(*c.output_padding, (Triple{1, 2, 1}));
  EXPECT_EQ(c.activation.kind, ActivationKind::kRelu6);
  EXPECT_EQ(c.kernel_initializer.class_name, "GlorotUniform");
  EXPECT_EQ(c.bias_initializer.class_name, "Zeros");
  EXPECT_EQ(c.name.rfind("conv3d_transpose", 0), 0u) << c.name;
}

TEST(RealConfigs, TfKeras2GetConfigValues) {
  const LayerConfig c = parse_layer_config(read_text(kDir + "tf_keras2_regularized/config.json"));
  EXPECT_EQ(c.flavor, Flavor::kTfKeras2);
  ASSERT_TRUE(c.kernel_regularizer && c.bias_regularizer && c.activity_regularizer);
  EXPECT_NEAR(c.kernel_regularizer->l1, 0.003, 1e-9);
  EXPECT_NEAR(c.bias_regularizer->l2, 0.01, 1e-9);
  EXPECT_NEAR(c.activity_regularizer->l1, 0.001, 1e-9);
  EXPECT_NEAR(c.activity_regularizer->l2, 0.02, 1e-9);
  // tf.keras 2.x activation layers used as activations: their configs carry the parameters.
  const LayerConfig leaky = parse_layer_config(read_text(kDir + "tf_keras2_act_LeakyReLU/config.json"));
  EXPECT_EQ(leaky.activation.kind, ActivationKind::kLeakyRelu);
  EXPECT_NEAR(leaky.activation.alpha, 0.3, 1e-7);
}

TEST(RealConfigs, ModelFileEntry) {
  const std::string text = R"({"class_name": "Conv3DTranspose", "config": {"name": "up1", "trainable": true,
      "dtype": "float32", "filters": 4, "kernel_size": [3, 3, 3], "strides": [2, 2, 2], "padding": "same",
      "data_format": "channels_last", "groups": 1, "activation": "relu", "use_bias": true,
      "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
      "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null,
      "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null,
      "bias_constraint": null, "output_padding": null}, "name": "up1", "inbound_nodes": []})";
  const LayerConfig c = parse_layer_config(text);
  EXPECT_EQ(c.flavor, Flavor::kTfKeras2);
  EXPECT_EQ(c.name, "up1");
  EXPECT_EQ(c.strides, (Triple{2, 2, 2}));
  expect_config_error(R"({"class_name": "Conv2DTranspose", "config": {"filters": 1, "kernel_size": 1}})",
                      "class_name", {"Conv2DTranspose"});
  expect_config_error(R"({"class_name": "Conv3DTranspose"})", "config");
}

// --- Defaults, ignored and unknown keys ---------------------------------------

TEST(Defaults, MissingKeysTakeKerasDefaults) {
  std::vector<std::string> warnings;
  const LayerConfig c = parse_layer_config(R"({"filters": 2, "kernel_size": 3})", std::nullopt, &warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(c.flavor, Flavor::kKeras3);
  EXPECT_EQ(c.kernel_size, (Triple{3, 3, 3}));
  EXPECT_EQ(c.strides, (Triple{1, 1, 1}));
  EXPECT_EQ(c.padding, Padding::kValid);
  EXPECT_FALSE(c.output_padding.has_value());
  EXPECT_EQ(c.data_format, DataFormat::kChannelsLast);
  EXPECT_EQ(c.dilation_rate, (Triple{1, 1, 1}));
  EXPECT_EQ(c.activation.kind, ActivationKind::kLinear);
  EXPECT_TRUE(c.use_bias);
  EXPECT_EQ(c.kernel_initializer.class_name, "GlorotUniform");
  EXPECT_EQ(c.bias_initializer.class_name, "Zeros");
  EXPECT_FALSE(c.kernel_regularizer || c.bias_regularizer || c.activity_regularizer);
  EXPECT_FALSE(c.kernel_constraint || c.bias_constraint);
  // null means the default too, as Keras's get_config() writes it.
  const LayerConfig nulls = parse_layer_config(
      R"({"filters": 2, "kernel_size": 3, "strides": null, "padding": null, "output_padding": null,
          "data_format": null, "activation": null, "kernel_regularizer": null})");
  EXPECT_EQ(nulls.strides, (Triple{1, 1, 1}));
  EXPECT_EQ(nulls.activation.kind, ActivationKind::kLinear);
  expect_config_error(R"({"kernel_size": 3})", "filters", {"missing"});
  expect_config_error(R"({"filters": 3})", "kernel_size", {"missing"});
}

TEST(Keys, IgnoredKeysAreAccepted) {
  const LayerConfig c = parse_layer_config(
      R"({"filters": 2, "kernel_size": 3, "name": "x", "trainable": false, "batch_input_shape": [null, 4, 4, 4, 3],
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
          "dilation_rate": 1, "groups": 1, "autocast": true})");
  EXPECT_EQ(c.flavor, Flavor::kKeras3) << "dilation_rate present: not the tf.keras 2.x dialect";
}

TEST(Keys, UnknownKeysAndValuesAreRejected) {
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "kernel_sise": 3})", "kernel_sise", {"kernel_sise"});
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "groups": 2})", "groups", {"2"});
  expect_config_error(R"({"filters": 2, "kernel_size": 3,
      "kernel_initializer": {"class_name": "RandomNormal", "config": {"mean": 0, "stdev": 1}}})",
                      "kernel_initializer", {"stdev"});
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "kernel_regularizer": {"class_name": "L1", "config": {"l2": 1}}})",
                      "kernel_regularizer", {"l2"});
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "kernel_constraint": {"class_name": "MaxNorm", "config": {"max": 1}}})",
                      "kernel_constraint", {"max"});
  expect_config_error(R"([1, 2])", "config");
  expect_config_error(R"({"filters": 2, )", "layer", {"invalid JSON"});
}

// --- Serialized objects, as each Keras version resolves them ------------------

// Keras accepts these names but they cannot work on a 5-D Conv3DTranspose kernel (Keras fails
// when the layer is built or called); tconv3d rejects them when parsing, with a clear error.
bool fails_later_in_keras(const std::string& kind, const std::string& name) {
  if (kind == "initializers") return name == "identity" || name == "Identity" || name == "IdentityInitializer";
  if (kind == "regularizers") return name == "orthogonal_regularizer";
  if (kind == "constraints") return name == "radial_constraint";
  if (kind == "activations") return name == "threshold";
  return false;
}

const char* argument_for(const std::string& kind) {
  if (kind == "initializers") return "kernel_initializer";
  if (kind == "regularizers") return "kernel_regularizer";
  if (kind == "constraints") return "kernel_constraint";
  return "activation";
}

TEST(SerializedObjects, EachFlavorAcceptsExactlyWhatItsKerasAccepts) {
  const json objects = read_json(kDir + "objects.json");
  int checked = 0;
  for (const char* flavor_name : {"keras3", "tf_keras2"}) {
    const Flavor flavor = parse_flavor(flavor_name);
    for (const auto& [kind, names] : objects[flavor_name].items()) {
      for (const auto& [name, result] : names.items()) {
        SCOPED_TRACE(std::string(flavor_name) + " " + kind + " '" + name + "'");
        const std::string text = json{{"filters", 2}, {"kernel_size", 2}, {argument_for(kind), name}}.dump();
        const bool keras_accepts = result["accepted"].get<bool>() && !fails_later_in_keras(kind, name);
        if (!keras_accepts) {
          expect_config_error(text, argument_for(kind), {}, flavor);
          ++checked;
          continue;
        }
        const LayerConfig bare = parse_layer_config(text, flavor);
        ++checked;
        if (kind == "activations") continue;
        // The serialized form Keras writes must parse to the same object.
        const json serialized = json{{"filters", 2}, {"kernel_size", 2}, {argument_for(kind), result["serialized"]}};
        const LayerConfig full = parse_layer_config(serialized.dump(), flavor);
        const json& config = result["config"];
        if (kind == "initializers") {
          EXPECT_EQ(bare.kernel_initializer.class_name, full.kernel_initializer.class_name);
          const std::string keras_class = result["class_name"];
          // Keras 3 calls it OrthogonalInitializer; we keep the canonical Orthogonal.
          EXPECT_EQ(full.kernel_initializer.class_name, keras_class == "OrthogonalInitializer" ? "Orthogonal" : keras_class);
          if (config.contains("stddev")) EXPECT_NEAR(full.kernel_initializer.stddev, config["stddev"].get<double>(), 1e-9);
          if (config.contains("maxval")) EXPECT_NEAR(full.kernel_initializer.maxval, config["maxval"].get<double>(), 1e-9);
          if (config.contains("value")) EXPECT_NEAR(full.kernel_initializer.value, config["value"].get<double>(), 1e-9);
          if (config.contains("mode")) EXPECT_EQ(full.kernel_initializer.mode, config["mode"].get<std::string>());
        } else if (kind == "regularizers") {
          ASSERT_TRUE(bare.kernel_regularizer && full.kernel_regularizer);
          for (const Regularizer* r : {&*bare.kernel_regularizer, &*full.kernel_regularizer}) {
            EXPECT_NEAR(r->l1, config.value("l1", 0.0), 1e-8) << "the default Keras gives this name";
            EXPECT_NEAR(r->l2, config.value("l2", 0.0), 1e-8);
          }
        } else if (kind == "constraints") {
          ASSERT_TRUE(bare.kernel_constraint && full.kernel_constraint);
          for (const Constraint* k : {&*bare.kernel_constraint, &*full.kernel_constraint}) {
            if (config.contains("max_value")) EXPECT_DOUBLE_EQ(k->max_value, config["max_value"].get<double>());
            if (config.contains("min_value")) EXPECT_DOUBLE_EQ(k->min_value, config["min_value"].get<double>());
            if (config.contains("axis")) EXPECT_EQ(k->axis, (std::vector<int64_t>{config["axis"].get<int64_t>()}));
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(SerializedObjects, L1L2NamesMeanDifferentThingsPerVersion) {
  // tf.keras 2.x: "l1_l2" is regularizers.l1_l2(l1=0.01, l2=0.01). Keras 3 has no such name.
  const LayerConfig tf = parse_layer_config(R"({"filters": 2, "kernel_size": 2, "kernel_regularizer": "l1_l2"})",
                                            Flavor::kTfKeras2);
  EXPECT_DOUBLE_EQ(tf.kernel_regularizer->l1, 0.01);
  EXPECT_DOUBLE_EQ(tf.kernel_regularizer->l2, 0.01);
  expect_config_error(R"({"filters": 2, "kernel_size": 2, "kernel_regularizer": "l1_l2"})", "kernel_regularizer",
                      {"l1_l2", "keras3"}, Flavor::kKeras3);
  const LayerConfig k3 = parse_layer_config(R"({"filters": 2, "kernel_size": 2, "kernel_regularizer": "l1l2"})");
  EXPECT_DOUBLE_EQ(k3.kernel_regularizer->l1, 0.0);
  EXPECT_DOUBLE_EQ(k3.kernel_regularizer->l2, 0.0);
}

// --- Activations -------------------------------------------------------------

TEST(Activations, EveryNameParses) {
  for (const char* name : {"linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign",
                           "squareplus", "soft_shrink", "hard_shrink", "sparse_plus", "silu", "swish", "hard_silu",
                           "hard_swish", "gelu", "glu", "tanh", "tanh_shrink", "hard_tanh", "sigmoid", "hard_sigmoid",
                           "sparse_sigmoid", "log_sigmoid", "exponential", "mish", "softmax", "log_softmax",
                           "sparsemax"}) {
    EXPECT_NO_THROW(parse_activation_name(name, Flavor::kKeras3)) << name;
  }
  for (const char* name : {"linear", "relu", "leaky_relu", "relu6", "elu", "selu", "softplus", "softsign", "silu",
                           "swish", "gelu", "tanh", "sigmoid", "hard_sigmoid", "exponential", "mish", "softmax",
                           "log_softmax", "ReLU", "LeakyReLU", "ELU", "Softmax"}) {
    EXPECT_NO_THROW(parse_activation_name(name, Flavor::kTfKeras2)) << name;
  }
  EXPECT_EQ(parse_activation_name("swish", Flavor::kKeras3).kind, ActivationKind::kSilu);
  EXPECT_EQ(parse_activation_name("hard_swish", Flavor::kKeras3).kind, ActivationKind::kHardSilu);
  EXPECT_EQ(parse_activation_name("hard_sigmoid", Flavor::kKeras3).kind, ActivationKind::kHardSigmoid);
  EXPECT_EQ(parse_activation_name("hard_sigmoid", Flavor::kTfKeras2).kind, ActivationKind::kHardSigmoidTfKeras2);
  EXPECT_EQ(parse_activation_name("gelu", Flavor::kKeras3).kind, ActivationKind::kGelu) << "exact by default";
  EXPECT_DOUBLE_EQ(parse_activation_name("leaky_relu", Flavor::kKeras3).alpha, 0.2);
}

TEST(Activations, ThresholdAndUnknownNamesAreClearErrors) {
  expect_config_error(R"({"filters": 2, "kernel_size": 2, "activation": "threshold"})", "activation",
                      {"threshold", "arguments"});
  expect_config_error(R"({"filters": 2, "kernel_size": 2, "activation": "Relu"})", "activation", {"Relu"});
  expect_config_error(R"({"filters": 2, "kernel_size": 2, "activation": "celu"})", "activation", {"celu"},
                      Flavor::kTfKeras2);
  expect_config_error(R"({"filters": 2, "kernel_size": 2, "activation": 5})", "activation", {"5"});
}

// --- What real Keras rejects (errors.json), per flavor -------------------------

TEST(KerasErrors, WeRejectExactlyWhatKerasRejects) {
  const json errors = read_json(kDir + "errors.json");
  for (const json& c : errors["cases"]) {
    for (const char* flavor_name : {"keras3", "tf_keras2"}) {
      SCOPED_TRACE(std::string(flavor_name) + " " + c["name"].get<std::string>() + " " + c["kwargs"].dump());
      const Flavor flavor = parse_flavor(flavor_name);
      const json& keras = c["results"][flavor_name];
      const std::vector<int64_t> input =
          c.contains("input_shape") ? c["input_shape"].get<std::vector<int64_t>>() : std::vector<int64_t>{1, 3, 3, 3, 2};
      std::optional<Error> ours;
      std::vector<int64_t> shape;
      try {
        const LayerConfig config = parse_layer_config(c["kwargs"].dump(), flavor);
        const ConvGeometry g = resolve_geometry(config, input);
        const Shape5 s = activated_output_shape(g, config.activation);
        shape.assign(s.begin(), s.end());
      } catch (const Error& e) {
        ours = e;
      }
      ASSERT_EQ(ours.has_value(), keras["raised"].get<bool>())
          << (ours ? ours->what() : "we accepted it") << " | Keras: " << keras.value("message", std::string("accepted"));
      if (ours) {
        EXPECT_EQ(ours->argument(), c["argument"].get<std::string>()) << ours->what();
      } else if (keras.contains("output_shape")) {
        EXPECT_EQ(shape, keras["output_shape"].get<std::vector<int64_t>>());
      }
    }
  }
}

TEST(KerasErrors, MessagesQuoteKerasWhereWeMirrorIt) {
  // Constructor errors whose Keras text we reproduce word for word (tuple-valued arguments).
  const json errors = read_json(kDir + "errors.json");
  // Keras 3 prints its padding and data_format choices as a Python set, whose order changes from
  // one Python process to the next, so those two are compared for tf.keras 2.x only.
  const std::vector<std::pair<const char*, std::vector<const char*>>> mirrored = {
      {"filters_zero", {"keras3", "tf_keras2"}},
      {"kernel_size_one_zero", {"keras3", "tf_keras2"}},
      {"strides_negative_one_axis", {"keras3", "tf_keras2"}},
      {"dilation_negative", {"keras3", "tf_keras2"}},
      {"output_padding_gt_stride_one_axis", {"keras3", "tf_keras2"}},
      {"stride_and_dilation", {"keras3", "tf_keras2"}},
      {"stride_and_dilation_mixed", {"keras3", "tf_keras2"}},
      {"padding_bad", {"tf_keras2"}},
      {"data_format_bad", {"tf_keras2"}},
  };
  for (const auto& [name, flavors] : mirrored) {
    for (const char* flavor_name : flavors) {
      const json* found = nullptr;
      for (const json& c : errors["cases"])
        if (c["name"] == name) found = &c;
      ASSERT_NE(found, nullptr) << name;
      const std::string keras_message = (*found)["results"][flavor_name]["message"];
      SCOPED_TRACE(std::string(flavor_name) + " " + name);
      expect_error([&] { parse_layer_config((*found)["kwargs"].dump(), parse_flavor(flavor_name)); },
                   (*found)["argument"], {keras_message});
    }
  }
}

// --- Every bad value of every argument ---------------------------------------

TEST(Validation, EveryBadValueNamesItsArgumentAndValue) {
  struct Bad {
    const char* extra;  // merged into {"filters": 2, "kernel_size": 3} (later keys win)
    const char* argument;
    std::vector<std::string> fragments;
  };
  const Bad cases[] = {
      {R"("filters": 0)", "filters", {"filters=0"}},
      {R"("filters": -3)", "filters", {"filters=-3"}},
      {R"("filters": 1.5)", "filters", {"1.5"}},
      {R"("filters": "8")", "filters", {"\"8\""}},
      {R"("kernel_size": 0)", "kernel_size", {"kernel_size", "0"}},
      {R"("kernel_size": [1, 2])", "kernel_size", {"[1,2]"}},
      {R"("kernel_size": [3, -1, 3])", "kernel_size", {"-1"}},
      {R"("kernel_size": "3")", "kernel_size", {"\"3\""}},
      {R"("kernel_size": [3, 3, 2.5])", "kernel_size", {"2.5"}},
      {R"("strides": 0)", "strides", {"strides", "0"}},
      {R"("strides": [1, -2, 1])", "strides", {"-2"}},
      {R"("strides": [1, 1, 1, 1])", "strides", {"[1,1,1,1]"}},
      {R"("padding": "full")", "padding", {"full"}},
      {R"("padding": 3)", "padding", {"3"}},
      {R"("strides": 2, "output_padding": 2)", "output_padding", {"output_padding", "2"}},
      {R"("strides": 2, "output_padding": -1)", "output_padding", {"-1"}},
      {R"("strides": [2, 2, 1], "output_padding": [1, 1, 1])", "output_padding", {"At dimension 2"}},
      {R"("output_padding": "1")", "output_padding", {"\"1\""}},
      {R"("data_format": "channels_middle")", "data_format", {"channels_middle"}},
      {R"("data_format": 1)", "data_format", {"1"}},
      {R"("dilation_rate": 0)", "dilation_rate", {"0"}},
      {R"("dilation_rate": [1, -2, 1])", "dilation_rate", {"-2"}},
      {R"("strides": 2, "dilation_rate": 2)", "dilation_rate", {"strides=(2, 2, 2)", "dilation_rate=(2, 2, 2)"}},
      {R"("activation": "bogus")", "activation", {"bogus"}},
      {R"("use_bias": "yes")", "use_bias", {"\"yes\""}},
      {R"("kernel_initializer": "bogus_init")", "kernel_initializer", {"bogus_init"}},
      {R"("bias_initializer": 7)", "bias_initializer", {"7"}},
      {R"("kernel_initializer": {"class_name": "VarianceScaling", "config": {"mode": "fan_sideways"}})",
       "kernel_initializer", {"fan_sideways"}},
      {R"("kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": -1}})", "kernel_initializer",
       {"-1"}},
      {R"("kernel_initializer": {"class_name": "VarianceScaling", "config": {"distribution": "cauchy"}})",
       "kernel_initializer", {"cauchy"}},
      {R"("kernel_initializer": {"class_name": "VarianceScaling", "config": {"mode": 3}})",
       "kernel_initializer.mode", {"3"}},
      {R"("kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": "abc"}})",
       "kernel_initializer.seed", {"abc"}},
      {R"("kernel_initializer": {"class_name": "GlorotUniform", "config": {"input_axes": [0]}})",
       "kernel_initializer.input_axes", {"[0]"}},
      {R"("kernel_initializer": "identity")", "kernel_initializer", {"Identity"}},
      {R"("kernel_regularizer": "l3")", "kernel_regularizer", {"l3"}},
      {R"("bias_regularizer": {"class_name": "L2", "config": {"l2": -0.1}})", "bias_regularizer", {"-0.1"}},
      {R"("activity_regularizer": {"class_name": "L1", "config": {"l1": "x"}})", "activity_regularizer.l1", {"\"x\""}},
      {R"("kernel_constraint": "radial_constraint")", "kernel_constraint", {"radial_constraint"}},
      {R"("bias_constraint": {"class_name": "MaxNorm", "config": {"axis": "0"}})", "bias_constraint.axis", {"\"0\""}},
      {R"("groups": 4)", "groups", {"4"}},
  };
  for (const Bad& bad : cases) {
    expect_config_error(std::string(R"({"filters": 2, "kernel_size": 3, )") + bad.extra + "}", bad.argument,
                        bad.fragments);
  }
}

TEST(Validation, TfKeras2WordingAndOrder) {
  // tf.keras 2.x checks negative strides first (normalize_tuple), then zeros (_validate_init).
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "strides": [0, -1, 1]})", "strides", {"`>= 0`", "-1"},
                      Flavor::kTfKeras2);
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "strides": [0, 1, 1]})", "strides",
                      {"cannot contains 0(s)"}, Flavor::kTfKeras2);
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "padding": "causal"})", "padding", {"Causal"},
                      Flavor::kTfKeras2);
  expect_config_error(R"({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2})", "output_padding",
                      {"Strides must be greater than output padding"}, Flavor::kTfKeras2);
  // tf.keras 2.x casts a float filters with int(); Keras 3 does not.
  EXPECT_EQ(parse_layer_config(R"({"filters": 4.0, "kernel_size": 3})", Flavor::kTfKeras2).filters, 4);
}

TEST(Flavors, ParseFlavorAndDilationWarning) {
  EXPECT_EQ(parse_flavor("keras3"), Flavor::kKeras3);
  EXPECT_EQ(parse_flavor("tf_keras2"), Flavor::kTfKeras2);
  expect_error([] { parse_flavor("keras2"); }, "keras_flavor", {"keras2"});
  const LayerConfig c =
      parse_layer_config(R"({"filters": 2, "kernel_size": 3, "dilation_rate": [1, 2, 1]})", Flavor::kTfKeras2);
  const std::vector<float> kernel(3 * 3 * 3 * 2 * 4, 0.1f), bias(2, 0.0f);
  const Layer layer = Layer::create(c, {1, 4, 4, 4, 4}, ConstTensor{kernel.data(), {3, 3, 3, 2, 4}},
                                    ConstTensor{bias.data(), {2}}, LayerOptions{Backend::kReference});
  ASSERT_EQ(layer.warnings().size(), 1u);
  EXPECT_NE(layer.warnings()[0].find("dilation_rate (1, 2, 1)"), std::string::npos) << layer.warnings()[0];
  EXPECT_EQ(layer.output_shape(), (Shape5{1, 6, 6, 6, 2})) << "tf.keras 2.x ignores the dilation";
  // The same config in Keras 3 honours it, silently (nothing to warn about).
  const LayerConfig k3 = parse_layer_config(R"({"filters": 2, "kernel_size": 3, "dilation_rate": [1, 2, 1]})");
  const Layer layer3 = Layer::create(k3, {1, 4, 4, 4, 4}, ConstTensor{kernel.data(), {3, 3, 3, 2, 4}},
                                     ConstTensor{bias.data(), {2}}, LayerOptions{Backend::kReference});
  EXPECT_TRUE(layer3.warnings().empty());
  EXPECT_EQ(layer3.output_shape(), (Shape5{1, 6, 8, 6, 2}));
}

// --- Layer-level checks: shapes, weights, sizes -------------------------------

class LayerChecks : public ::testing::Test {
 protected:
  LayerConfig config = parse_layer_config(R"({"filters": 2, "kernel_size": [3, 2, 1]})");
  std::vector<float> kernel = std::vector<float>(3 * 2 * 1 * 2 * 4, 0.5f);
  std::vector<float> bias = std::vector<float>(2, 0.0f);
  ConstTensor kernel_tensor{kernel.data(), {3, 2, 1, 2, 4}};
  ConstTensor bias_tensor{bias.data(), {2}};
};

TEST_F(LayerChecks, InputRankAndChannels) {
  expect_error([&] { Layer::create(config, {1, 4, 4, 4}, kernel_tensor, bias_tensor); }, "input_shape", {"rank 4"});
  expect_error([&] { Layer::create(config, {1, 4, 4, 4, 4, 1}, kernel_tensor, bias_tensor); }, "input_shape",
               {"rank 6"});
  // 5 input channels but the kernel was made for 4.
  expect_error([&] { Layer::create(config, {1, 4, 4, 4, 5}, kernel_tensor, bias_tensor); }, "kernel",
               {"(3, 2, 1, 2, 4)", "(3, 2, 1, 2, 5)"});
  LayerConfig first = config;
  first.data_format = DataFormat::kChannelsFirst;
  EXPECT_NO_THROW(Layer::create(first, {1, 4, 5, 5, 5}, kernel_tensor, bias_tensor));
  expect_error([&] { Layer::create(first, {1, 5, 4, 4, 4}, kernel_tensor, bias_tensor); }, "kernel");
}

TEST_F(LayerChecks, KernelAndBiasShapes) {
  const std::vector<int64_t> input = {2, 3, 3, 3, 4};
  expect_error([&] { Layer::create(config, input, ConstTensor{kernel.data(), {3, 2, 1, 4, 2}}, bias_tensor); },
               "kernel", {"(3, 2, 1, 4, 2)"});
  expect_error([&] { Layer::create(config, input, ConstTensor{kernel.data(), {3, 2, 2, 4}}, bias_tensor); }, "kernel");
  expect_error([&] { Layer::create(config, input, ConstTensor{}, bias_tensor); }, "kernel");
  expect_error([&] { Layer::create(config, input, kernel_tensor, ConstTensor{bias.data(), {3}}); }, "bias", {"(3)"});
  expect_error([&] { Layer::create(config, input, kernel_tensor, ConstTensor{bias.data(), {1, 2}}); }, "bias");
  expect_error([&] { Layer::create(config, input, kernel_tensor, ConstTensor{}); }, "bias", {"use_bias"});
  LayerConfig no_bias = config;
  no_bias.use_bias = false;
  expect_error([&] { Layer::create(no_bias, input, kernel_tensor, bias_tensor); }, "bias", {"use_bias is false"});
  EXPECT_NO_THROW(Layer::create(no_bias, input, kernel_tensor, ConstTensor{}));
}

TEST_F(LayerChecks, GluNeedsAnEvenLastAxis) {
  LayerConfig glu = config;
  glu.activation = parse_activation_name("glu", Flavor::kKeras3);
  glu.filters = 3;
  std::vector<float> k3(3 * 2 * 1 * 3 * 4, 0.1f), b3(3, 0.0f);
  expect_error([&] { Layer::create(glu, {1, 2, 2, 2, 4}, ConstTensor{k3.data(), {3, 2, 1, 3, 4}},
                                   ConstTensor{b3.data(), {3}}); },
               "activation", {"odd"});
}

TEST(Sizes, HugeShapesAreErrorsNotCrashes) {
  const LayerConfig c = parse_layer_config(R"({"filters": 8, "kernel_size": 3, "strides": 2})");
  const int64_t big = int64_t{1} << 40;
  const std::vector<std::vector<int64_t>> inputs = {
      {1, big, 4, 4, 3},                                            // one axis beyond any buffer
      {1, 4, 4, 4, std::numeric_limits<int64_t>::max()},            // channels overflow int64 products
      {1 << 20, 1 << 20, 1 << 20, 4, 3},                            // element count overflows int64
      {std::numeric_limits<int64_t>::max(), 1, 1, 1, 1},
      {64, 512, 512, 512, 3},                                       // fits int64, cannot be allocated
  };
  for (const std::vector<int64_t>& input : inputs) {
    SCOPED_TRACE(shape_to_string(input));
    try {
      Layer::create_initialized(c, input, 1);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_FALSE(e.argument().empty()) << e.what();
    } catch (const std::bad_alloc&) {
      ADD_FAILURE() << "bad_alloc instead of tconv3d::Error";
    }
  }
  // Huge arguments: filters and kernel so large that the kernel alone cannot exist.
  for (const char* text : {R"({"filters": 1099511627776, "kernel_size": 3})",
                           R"({"filters": 4, "kernel_size": [100000, 100000, 100000]})",
                           R"({"filters": 4, "kernel_size": 2, "strides": 4611686018427387904})",
                           R"({"filters": 4, "kernel_size": 2, "dilation_rate": 4611686018427387904})"}) {
    SCOPED_TRACE(text);
    try {
      Layer::create_initialized(parse_layer_config(text), {1, 2, 2, 2, 3}, 1);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_FALSE(e.argument().empty()) << e.what();
    } catch (const std::bad_alloc&) {
      ADD_FAILURE() << "bad_alloc instead of tconv3d::Error";
    }
  }
}

}  // namespace
}  // namespace tconv3d
