// Every backend built (reference, generic, xbyak, llvm) on every ISA this CPU
// runs, against real Keras: every fixture written by
// scripts/make_keras_fixtures.py (Keras 3 on JAX and tf.keras 2.x), plus the
// loss terms Keras reported and its constraint outputs.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config_json.hpp"
#include "core/weights.hpp"
#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;

const std::string kDir = std::string(TCONV3D_TEST_DATA_DIR) + "/keras/";
constexpr double kTolerance = 1e-5;  // of the output scale

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

json read_json(const std::string& path) { return json::parse(read_text(path)); }

bool exists(const std::string& path) { return std::ifstream(path).good(); }

Flavor flavor_of(const json& entry) { return parse_flavor(entry["flavor"].get<std::string>()); }

// Runs while tests are registered: a missing or broken index must not abort test discovery;
// KerasGoldenCoverage then fails and says why.
std::vector<json> golden_cases() {
  try {
    const json index = read_json(kDir + "index.json");
    return index["cases"].get<std::vector<json>>();
  } catch (const std::exception&) {
    return {};
  }
}

class KerasGolden : public ::testing::TestWithParam<json> {};

struct Fixture {
  LayerConfig config;
  std::vector<std::string> parse_warnings;
  NpyArray input, kernel, bias, output;
  bool has_bias = false;
};

Fixture load(const json& entry) {
  const std::string dir = kDir + entry["name"].get<std::string>() + "/";
  Fixture f;
  // The flavor is not forced: a tf.keras 2.x get_config() must be recognised by its dialect.
  f.config = parse_layer_config(read_text(dir + "config.json"), std::nullopt, &f.parse_warnings);
  f.input = read_npy(dir + "input.npy");
  f.kernel = read_npy(dir + "kernel.npy");
  // Where this Keras has a known bug (sparsemax before keras-team/keras#23469) the fixture also
  // holds the corrected output, computed from Keras's own pre-activation result; see index.json.
  f.output = read_npy(dir + entry.value("expected_output", std::string("output.npy")));
  f.has_bias = exists(dir + "bias.npy");
  if (f.has_bias) f.bias = read_npy(dir + "bias.npy");
  return f;
}

ConstTensor bias_tensor(const Fixture& f) {
  return f.has_bias ? ConstTensor{f.bias.data.data(), f.bias.shape} : ConstTensor{};
}

// Runs the fixture with `options`: an empty string when the output matches
// Keras, else what went wrong. A refusal (tconv3d::Error) is a failure too:
// every backend built runs every layer Keras accepts.
std::string check_against_keras(const json& entry, const Fixture& f, const LayerOptions& options) {
  std::optional<Layer> layer;
  try {
    layer.emplace(Layer::create(f.config, f.input.shape, ConstTensor{f.kernel.data.data(), f.kernel.shape},
                                bias_tensor(f), options));
  } catch (const Error& e) {
    return std::string("refused: ") + e.what();
  }
  std::ostringstream why;
  if (layer->backend() != options.backend)
    why << "asked for " << to_string(options.backend) << ", got " << layer->kernel_name() << "; ";
  const Shape5 shape = layer->output_shape();
  if (std::vector<int64_t>(shape.begin(), shape.end()) != f.output.shape) return why.str() + "wrong output shape";
  std::vector<float> actual(static_cast<size_t>(layer->output_elements()));
  layer->forward(f.input.data.data(), actual.data());
  const double error = testing::scaled_max_error(actual, f.output.data);
  if (!(error <= kTolerance)) why << "error " << error << " > " << kTolerance << " (" << layer->kernel_name() << ")";
  return why.str().empty() ? "" : why.str() + " kwargs " + entry["kwargs"].dump();
}

// Keras's semantics, fixture by fixture, on the reference kernel.
TEST_P(KerasGolden, MatchesKeras) {
  const json& entry = GetParam();
  const Fixture f = load(entry);
  EXPECT_EQ(f.config.flavor, flavor_of(entry)) << "the config's dialect should select its flavor";
  EXPECT_EQ(f.config.use_bias, entry["use_bias"].get<bool>());
  LayerOptions options;
  options.backend = Backend::kReference;
  const std::string wrong = check_against_keras(entry, f, options);
  EXPECT_TRUE(wrong.empty()) << entry["name"] << ": " << wrong;
}

// Every fixture on every other backend built, on every ISA this CPU runs
// (tests/isa_harness.hpp; an ISA the CPU lacks skips, visibly).
class KerasGoldenTarget : public testing::TargetTest {};

TEST_P(KerasGoldenTarget, EveryFixtureMatchesKeras) {
  const std::vector<json> cases = golden_cases();
  ASSERT_FALSE(cases.empty()) << "missing fixtures: run scripts/make_keras_fixtures.py";
  for (const json& entry : cases) {
    const Fixture f = load(entry);
    const std::string wrong = check_against_keras(entry, f, options(2));
    EXPECT_TRUE(wrong.empty()) << entry["name"] << " on " << target().name() << ": " << wrong;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, KerasGoldenTarget,
                         ::testing::ValuesIn(testing::targets({Backend::kGeneric, Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

TEST_P(KerasGolden, SerializedLayerParsesToTheSameConfig) {
  // {"class_name": "Conv3DTranspose", "config": {...}, "build_config": ...} as in a model file.
  const json& entry = GetParam();
  const std::string dir = kDir + entry["name"].get<std::string>() + "/";
  const LayerConfig from_dict = parse_layer_config(read_text(dir + "config.json"));
  const LayerConfig from_file = parse_layer_config(read_text(dir + "layer.json"));
  EXPECT_EQ(from_file.flavor, from_dict.flavor);
  EXPECT_EQ(from_file.filters, from_dict.filters);
  EXPECT_EQ(from_file.kernel_size, from_dict.kernel_size);
  EXPECT_EQ(from_file.strides, from_dict.strides);
  EXPECT_EQ(from_file.padding, from_dict.padding);
  EXPECT_EQ(from_file.output_padding, from_dict.output_padding);
  EXPECT_EQ(from_file.dilation_rate, from_dict.dilation_rate);
  EXPECT_EQ(from_file.data_format, from_dict.data_format);
  EXPECT_EQ(from_file.activation.kind, from_dict.activation.kind);
  EXPECT_EQ(from_file.use_bias, from_dict.use_bias);
}

class KerasGoldenLosses : public KerasGolden {};

TEST_P(KerasGoldenLosses, LossTermsMatchKeras) {
  const json& entry = GetParam();
  const Fixture f = load(entry);
  const Layer layer = Layer::create(f.config, f.input.shape, ConstTensor{f.kernel.data.data(), f.kernel.shape},
                                    bias_tensor(f), LayerOptions{Backend::kReference});
  // Keras's activity term is on its own output; use that output so only the loss rule is tested.
  const Layer::Losses losses = layer.losses(f.output.data.data());
  const json& expected = entry["losses"];
  // Keras sums in float32: relative 1e-5 covers its rounding on a few thousand terms.
  auto near = [](double actual, double keras) { return std::abs(actual - keras) <= 1e-5 * std::max(1.0, std::abs(keras)); };
  EXPECT_PRED2(near, losses.kernel, expected["kernel"].get<double>());
  EXPECT_PRED2(near, losses.bias, expected["bias"].get<double>());
  EXPECT_PRED2(near, losses.activity, expected["activity"].get<double>())
      << "Keras divides the activity term by the batch size (" << expected["batch"] << ")";
}

class KerasGoldenTfDilation : public KerasGolden {};

TEST_P(KerasGoldenTfDilation, IgnoredDilationIsReportedUnderTfKeras2) {
  // tf.keras 2.x drops dilation_rate from get_config() and ignores it; a config that carries it
  // under the tf_keras2 flavor must give tf.keras 2.x's output and a warning, never a silent change.
  const json& entry = GetParam();
  Fixture f = load(entry);
  json config = read_json(kDir + entry["name"].get<std::string>() + "/config.json");
  config["dilation_rate"] = entry["kwargs"]["dilation_rate"];
  const LayerConfig dilated = parse_layer_config(config.dump(), Flavor::kTfKeras2);
  const Layer layer = Layer::create(dilated, f.input.shape, ConstTensor{f.kernel.data.data(), f.kernel.shape},
                                    bias_tensor(f), LayerOptions{Backend::kReference});
  ASSERT_FALSE(layer.warnings().empty());
  EXPECT_NE(layer.warnings().front().find("dilation_rate"), std::string::npos) << layer.warnings().front();
  std::vector<float> actual(static_cast<size_t>(layer.output_elements()));
  ASSERT_EQ(actual.size(), f.output.data.size());
  layer.forward(f.input.data.data(), actual.data());
  EXPECT_LE(testing::scaled_max_error(actual, f.output.data), kTolerance);
}

std::string case_name(const ::testing::TestParamInfo<json>& info) {
  std::string name = info.param["name"].get<std::string>();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

std::vector<json> cases_where(bool (*keep)(const json&)) {
  std::vector<json> kept;
  for (const json& c : golden_cases())
    if (keep(c)) kept.push_back(c);
  return kept;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, KerasGolden, ::testing::ValuesIn(golden_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, KerasGoldenLosses,
                         ::testing::ValuesIn(cases_where([](const json& c) { return c.contains("losses"); })),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, KerasGoldenTfDilation, ::testing::ValuesIn(cases_where([](const json& c) {
                           return flavor_of(c) == Flavor::kTfKeras2 && c["kwargs"].contains("dilation_rate");
                         })),
                         case_name);

TEST(KerasGoldenSparsemax, OurRowsLieOnTheSimplexWhereThisKerasDoesNot) {
  // Documents the one place we knowingly differ from the installed Keras (its sparsemax bug).
  int checked = 0;
  for (const json& c : cases_where([](const json& e) { return e.contains("keras_bug"); })) {
    const Fixture f = load(c);
    const Layer layer = Layer::create(f.config, f.input.shape, ConstTensor{f.kernel.data.data(), f.kernel.shape},
                                      bias_tensor(f), LayerOptions{Backend::kReference});
    std::vector<float> ours(static_cast<size_t>(layer.output_elements()));
    layer.forward(f.input.data.data(), ours.data());
    const NpyArray keras_output = read_npy(kDir + c["name"].get<std::string>() + "/output.npy");
    const int64_t row = layer.output_shape()[4];
    double worst_ours = 0, worst_keras = 0;
    for (size_t r = 0; r + row <= ours.size(); r += static_cast<size_t>(row)) {
      double sum_ours = 0, sum_keras = 0;
      for (int64_t i = 0; i < row; ++i) {
        sum_ours += ours[r + i];
        sum_keras += keras_output.data[r + i];
      }
      worst_ours = std::max(worst_ours, std::abs(sum_ours - 1));
      worst_keras = std::max(worst_keras, std::abs(sum_keras - 1));
    }
    EXPECT_LE(worst_ours, 1e-5) << c["name"];
    EXPECT_GT(worst_keras, 1e-2) << c["name"] << ": marked as a Keras bug, but Keras's rows sum to 1";
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "the fixtures' Keras has a correct sparsemax; nothing to document";
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasGolden);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasGoldenLosses);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasGoldenTfDilation);

TEST(KerasGoldenCoverage, FixturesCoverWhatTheIssueAsks) {
  ASSERT_NO_THROW(read_json(kDir + "index.json")["cases"].get<std::vector<json>>())
      << "missing fixtures: run scripts/make_keras_fixtures.py";
  ASSERT_GE(golden_cases().size(), 100u);
  // A guard against a regenerated fixture set that silently lost coverage.
  bool flavors[2] = {false, false}, same = false, valid = false, channels_first = false, dilation = false,
       output_padding = false, no_bias = false, stride3 = false, glu_first = false, batch2 = false;
  for (const json& c : golden_cases()) {
    const json& k = c["kwargs"];
    flavors[flavor_of(c) == Flavor::kKeras3 ? 0 : 1] = true;
    const std::string padding = k.value("padding", "valid");
    same |= padding == "same" || padding == "SAME";
    valid |= padding == "valid";
    channels_first |= k.value("data_format", "") == "channels_first";
    dilation |= k.contains("dilation_rate");
    output_padding |= k.contains("output_padding");
    no_bias |= !c["use_bias"].get<bool>();
    stride3 |= k.contains("strides") && k["strides"].dump().find('3') != std::string::npos;
    glu_first |= k.value("activation", "") == "glu" && k.value("data_format", "") == "channels_first";
    batch2 |= c["input_shape"][0].get<int>() >= 2;
  }
  EXPECT_TRUE(flavors[0] && flavors[1]);
  EXPECT_TRUE(same && valid && channels_first && dilation && output_padding && no_bias && stride3 && glu_first &&
              batch2);
}

// --- Constraints against Keras's outputs on the same tensors ----------------

TEST(KerasConstraints, MatchKeras) {
  const json index = read_json(kDir + "constraints.json");
  const NpyArray kernel = read_npy(kDir + "constraints/kernel.npy");
  const NpyArray bias = read_npy(kDir + "constraints/bias.npy");
  int checked = 0;
  for (const json& c : index["cases"]) {
    SCOPED_TRACE(c["flavor"].get<std::string>() + " " + c["name"].get<std::string>() + " on " +
                 c["tensor"].get<std::string>());
    const Flavor flavor = parse_flavor(c["flavor"].get<std::string>());
    const std::optional<Constraint> constraint = constraint_from_json(c["serialized"], "kernel_constraint", flavor);
    ASSERT_TRUE(constraint.has_value());
    const NpyArray& source = c["tensor"] == "kernel" ? kernel : bias;
    std::vector<float> values = source.data;
    apply_constraint(*constraint, values.data(), source.shape);
    const NpyArray expected = read_npy(kDir + "constraints/" + c["output"].get<std::string>());
    EXPECT_LE(testing::scaled_max_error(values, expected.data), 1e-6);
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

}  // namespace
}  // namespace tconv3d
