// Output shapes, crops and shape-time errors: the cases of Keras's own tests
// (tests/data/keras_test_cases.json, a copy of the spec's) and every row of
// the worked-examples table of keras_semantics.md §3.5, in both flavors.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;

json spec_cases() {
  std::ifstream in(std::string(TCONV3D_TEST_DATA_DIR) + "/keras_test_cases.json");
  std::ostringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

// The layer arguments of a spec case, as a get_config()-style dict.
std::string layer_json(const json& c) {
  json config = json::object();
  for (const char* key : {"filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
                          "dilation_rate", "activation", "kernel_regularizer", "bias_regularizer",
                          "activity_regularizer"}) {
    if (c.contains(key)) config[key] = c[key];
  }
  return config.dump();
}

std::vector<int64_t> to_vector(const Shape5& s) { return {s.begin(), s.end()}; }

Shape5 output_shape(const LayerConfig& config, const std::vector<int64_t>& input_shape) {
  return activated_output_shape(resolve_geometry(config, input_shape), config.activation);
}

TEST(KerasTestCases, OutputShapesInBothFlavors) {
  const json cases = spec_cases()["cases"];
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["source"].get<std::string>());
    const std::vector<int64_t> input = c["input_shape"].get<std::vector<int64_t>>();
    const LayerConfig keras3 = parse_layer_config(layer_json(c), Flavor::kKeras3);
    const LayerConfig tf_keras2 = parse_layer_config(layer_json(c), Flavor::kTfKeras2);
    EXPECT_EQ(to_vector(output_shape(keras3, input)), c["computed_output_shape_keras3"].get<std::vector<int64_t>>());
    EXPECT_EQ(to_vector(output_shape(tf_keras2, input)),
              c["computed_output_shape_tf_keras2"].get<std::vector<int64_t>>());
    // The shape the Keras test itself states (batch may be None there), for the flavor it tests.
    if (!c["expected_output_shape"].is_null()) {
      const Shape5 ours = output_shape(c["semantics"] == "keras3" ? keras3 : tf_keras2, input);
      const json& expected = c["expected_output_shape"];
      for (size_t i = 0; i < 5; ++i) {
        if (!expected[i].is_null()) EXPECT_EQ(ours[i], expected[i].get<int64_t>()) << "axis " << i;
      }
    }
  }
}

TEST(KerasTestCases, ErrorCases) {
  const json spec = spec_cases();  // the range-for below must not iterate a dead temporary
  for (const json& c : spec["error_cases"]) {
    SCOPED_TRACE(c.dump());
    const std::regex message(c["message_regex"].get<std::string>());
    if (c.contains("ctor")) {
      // Keras 3's wording is what the regexes quote; both flavors reject these constructors.
      try {
        parse_layer_config(c["ctor"].dump(), Flavor::kKeras3);
        ADD_FAILURE() << "Keras 3 flavor accepted a config Keras rejects";
      } catch (const Error& e) {
        EXPECT_TRUE(std::regex_search(std::string(e.what()), message)) << e.what();
      }
      EXPECT_THROW(parse_layer_config(c["ctor"].dump(), Flavor::kTfKeras2), Error);
    } else {
      // The TF size-check error: only tf.keras 2.x raises; Keras 3 (JAX) computes (I-1)*s per axis.
      const json& call = c["call"];
      const std::vector<int64_t> input = call["input_shape"].get<std::vector<int64_t>>();
      const LayerConfig tf_keras2 = parse_layer_config(layer_json(call), Flavor::kTfKeras2);
      try {
        resolve_geometry(tf_keras2, input);
        ADD_FAILURE() << "tf_keras2 flavor accepted what TensorFlow rejects";
      } catch (const Error& e) {
        EXPECT_EQ(e.argument(), "output_padding");
        EXPECT_TRUE(std::regex_search(std::string(e.what()), message)) << e.what();
      }
      const LayerConfig keras3 = parse_layer_config(layer_json(call), Flavor::kKeras3);
      EXPECT_EQ(to_vector(output_shape(keras3, input)), (std::vector<int64_t>{2, 6, 6, 6, 2}));
    }
  }
}

TEST(KerasTestCases, JaxPaddingAndOutputSizes) {
  const json spec = spec_cases();
  for (const json& c : spec["padding_cases"]) {
    SCOPED_TRACE(c.dump());
    const int64_t k = c["kernel_size"], s = c["stride"];
    const int64_t d = c.value("dilation_rate", int64_t{1});
    const Padding padding = c["padding"] == "same" ? Padding::kSame : Padding::kValid;
    std::optional<int64_t> op;
    if (!c["output_padding"].is_null()) op = c["output_padding"].get<int64_t>();
    if (c.contains("jax_pad")) {
      // JAX's (L, R) from our crop: L = Keff-1-P, R = N - (I-1)*s - 1 - L + Keff - 1 (any I).
      const int64_t keff = (k - 1) * d + 1, in = 5;
      const int64_t left = keff - 1 - keras_crop_begin(k, s, d, padding, op);
      const int64_t right = keras_output_length(in, k, s, d, padding, op) - (in - 1) * s - 1 - left + keff - 1;
      EXPECT_EQ(left, c["jax_pad"][0].get<int64_t>());
      EXPECT_EQ(right, c["jax_pad"][1].get<int64_t>());
    } else {
      EXPECT_EQ(keras_output_length(c["input_size"], k, s, d, padding, op), c["output_size"].get<int64_t>());
    }
  }
}

// keras_semantics.md §3.5, every row. tf_n < 0: tf.keras 2.x raises TF's size-check error.
struct WorkedExample {
  int64_t in, kernel, stride, dilation;
  Padding padding;
  std::optional<int64_t> op;
  int64_t n, jax_left, jax_right, crop, tf_n;
};

constexpr Padding V = Padding::kValid, S = Padding::kSame;
const WorkedExample kTable[] = {
    {4, 3, 1, 1, V, {}, 6, 2, 2, 0, 6},  {4, 3, 1, 1, S, {}, 4, 1, 1, 1, 4},
    {4, 2, 1, 1, S, {}, 4, 1, 0, 0, 4},  {4, 3, 2, 1, V, {}, 9, 2, 2, 0, 9},
    {4, 3, 2, 1, S, {}, 8, 2, 1, 0, 8},  {4, 2, 2, 1, S, {}, 8, 1, 1, 0, 8},
    {4, 4, 2, 1, S, {}, 8, 2, 2, 1, 8},  {4, 1, 3, 1, V, {}, 12, 0, 2, 0, 12},
    {4, 2, 3, 1, S, {}, 12, 1, 2, 0, 12}, {4, 3, 2, 1, V, 1, 10, 2, 3, 0, 10},
    {4, 3, 2, 1, S, 0, 7, 1, 1, 1, 7},   {4, 3, 2, 1, S, 1, 8, 2, 1, 0, 8},
    {4, 2, 2, 1, S, 1, 7, 1, 0, 0, 7},   {4, 2, 2, 1, S, 0, 6, 0, 0, 1, -1},
    {4, 5, 3, 1, S, 1, 11, 3, 2, 1, 11}, {4, 3, 1, 2, V, {}, 8, 4, 4, 0, 6},
    {4, 3, 1, 2, S, {}, 4, 2, 2, 2, 4},
};

LayerConfig example_config(const WorkedExample& row, Flavor flavor) {
  LayerConfig c;
  c.filters = 2;
  c.kernel_size = {row.kernel, row.kernel, row.kernel};
  c.strides = {row.stride, row.stride, row.stride};
  c.dilation_rate = {row.dilation, row.dilation, row.dilation};
  c.padding = row.padding;
  if (row.op) c.output_padding = Triple{*row.op, *row.op, *row.op};
  c.flavor = flavor;
  validate(c);
  return c;
}

TEST(WorkedExamples, Keras3) {
  for (const WorkedExample& row : kTable) {
    SCOPED_TRACE("I=" + std::to_string(row.in) + " k=" + std::to_string(row.kernel) + " s=" +
                 std::to_string(row.stride) + " d=" + std::to_string(row.dilation) + " " + to_string(row.padding) +
                 " op=" + (row.op ? std::to_string(*row.op) : "None"));
    const ConvGeometry g = resolve_geometry(example_config(row, Flavor::kKeras3), {1, row.in, row.in, row.in, 3});
    for (const AxisGeometry& axis : g.axes) {
      EXPECT_EQ(axis.out, row.n);
      EXPECT_EQ(axis.crop_begin, row.crop);
      const int64_t left = axis.effective_kernel() - 1 - axis.crop_begin;
      EXPECT_EQ(left, row.jax_left);
      // The JAX right pad is the uncropped tail: Keff-1 - crop_end.
      EXPECT_EQ(axis.effective_kernel() - 1 - axis.crop_end(), row.jax_right);
    }
  }
}

TEST(WorkedExamples, TfKeras2) {
  for (const WorkedExample& row : kTable) {
    SCOPED_TRACE("I=" + std::to_string(row.in) + " k=" + std::to_string(row.kernel) + " s=" +
                 std::to_string(row.stride) + " d=" + std::to_string(row.dilation) + " " + to_string(row.padding) +
                 " op=" + (row.op ? std::to_string(*row.op) : "None"));
    const LayerConfig config = example_config(row, Flavor::kTfKeras2);
    const std::vector<int64_t> input = {1, row.in, row.in, row.in, 3};
    if (row.tf_n < 0) {
      try {
        resolve_geometry(config, input);
        ADD_FAILURE() << "tf_keras2 must raise TensorFlow's error";
      } catch (const Error& e) {
        EXPECT_EQ(e.argument(), "output_padding");
        EXPECT_NE(std::string(e.what()).find("Size of out_backprop doesn't match computed"), std::string::npos);
      }
      continue;
    }
    std::vector<std::string> warnings;
    const ConvGeometry g = resolve_geometry(config, input, &warnings);
    EXPECT_EQ(warnings.empty(), row.dilation == 1) << "an ignored dilation is reported";
    for (const AxisGeometry& axis : g.axes) {
      EXPECT_EQ(axis.out, row.tf_n);
      EXPECT_EQ(axis.dilation, 1) << "tf.keras 2.x ignores dilation_rate";
      // TF's padding_before: equal to Keras 3's crop whenever the dilation is 1 (§3.3).
      EXPECT_EQ(axis.crop_begin, keras_crop_begin(row.kernel, row.stride, 1, row.padding, row.op));
      if (row.dilation == 1) EXPECT_EQ(axis.crop_begin, row.crop);
    }
  }
}

// useful_flops() counts exactly the (input, tap) products whose output lies
// inside the cropped output, per axis, times the channel products.
TEST(Flops, UsefulFlopsCountOnlyProductsInsideTheOutput) {
  std::mt19937_64 rng(12);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int c = 0; c < 200; ++c) {
    ConvGeometry g;
    g.batch = pick(1, 3);
    g.in_channels = pick(1, 5);
    g.out_channels = pick(1, 5);
    double expected = 2.0 * double(g.batch * g.in_channels * g.out_channels);
    for (AxisGeometry& ax : g.axes) {
      ax = {.in = pick(1, 9), .kernel = pick(1, 5), .stride = pick(1, 3), .dilation = pick(1, 3)};
      ax.crop_begin = pick(0, ax.effective_kernel() - 1);
      ax.out = std::max<int64_t>(1, ax.full_out() - ax.crop_begin - pick(0, ax.effective_kernel() - 1));
      int64_t inside = 0;
      for (int64_t i = 0; i < ax.in; ++i)
        for (int64_t a = 0; a < ax.kernel; ++a) {
          const int64_t o = i * ax.stride + a * ax.dilation - ax.crop_begin;
          inside += o >= 0 && o < ax.out;
        }
      expected *= double(inside);
    }
    ASSERT_DOUBLE_EQ(g.useful_flops(), expected) << "case " << c;
    ASSERT_LE(g.useful_flops(), g.flops());
  }
  LayerConfig valid;
  valid.filters = 4;
  valid.kernel_size = {2, 2, 2};
  valid.strides = {2, 2, 2};
  const ConvGeometry unet = resolve_geometry(valid, {1, 4, 4, 4, 3});
  EXPECT_DOUBLE_EQ(unet.useful_flops(), unet.flops());  // valid padding crops nothing
}

TEST(Shapes, ChannelsFirstMovesOnlyTheChannelAxis) {
  LayerConfig c = parse_layer_config(R"({"filters": 7, "kernel_size": [2, 3, 1], "strides": [2, 1, 3],
                                         "data_format": "channels_first"})");
  const ConvGeometry g = resolve_geometry(c, {2, 5, 3, 4, 2});
  EXPECT_EQ(to_vector(g.output_shape()), (std::vector<int64_t>{2, 7, 6, 6, 6}));
  EXPECT_EQ(to_vector(g.input_shape()), (std::vector<int64_t>{2, 5, 3, 4, 2}));
}

TEST(Shapes, GluHalvesTheLastAxisInEitherFormat) {
  const LayerConfig last = parse_layer_config(R"({"filters": 6, "kernel_size": 1, "activation": "glu"})");
  EXPECT_EQ(to_vector(output_shape(last, {1, 2, 3, 4, 5})), (std::vector<int64_t>{1, 2, 3, 4, 3}));
  const LayerConfig first =
      parse_layer_config(R"({"filters": 6, "kernel_size": 1, "activation": "glu", "data_format": "channels_first"})");
  // Keras applies glu to axis -1: W under channels_first.
  EXPECT_EQ(to_vector(output_shape(first, {1, 5, 2, 3, 4})), (std::vector<int64_t>{1, 6, 2, 3, 2}));
}

TEST(Shapes, RejectsBadInputShapes) {
  const LayerConfig c = parse_layer_config(R"({"filters": 2, "kernel_size": 3})");
  for (const std::vector<int64_t>& bad : std::vector<std::vector<int64_t>>{
           {1, 4, 4, 4}, {1, 4, 4, 4, 3, 1}, {}, {0, 4, 4, 4, 3}, {1, 4, -1, 4, 3}, {1, 4, 4, 4, 0}}) {
    try {
      resolve_geometry(c, bad);
      ADD_FAILURE() << "accepted " << shape_to_string(bad);
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "input_shape") << e.what();
      EXPECT_NE(std::string(e.what()).find(shape_to_string(bad)), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tconv3d
