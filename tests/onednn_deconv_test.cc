// The benchmark's oneDNN side (bench/onednn_deconv): it matches the reference,
// and it runs on the thread count it was built for, whatever the caller's
// OpenMP setting (oneDNN's OpenMP build fixes its thread split when the
// primitive is made; a "1 thread" oneDNN once ran on 2 and beat the 1-core FMA
// peak). Built only with oneDNN (TCONV3D_HAVE_ONEDNN, see tests/CMakeLists.txt).
#include <gtest/gtest.h>

#ifdef TCONV3D_HAVE_ONEDNN

#include <dirent.h>
#include <omp.h>

#include <random>
#include <vector>

#include "bench/onednn_deconv.hpp"
#include "bench/onednn_bf16.hpp"
#include "bench/onednn_deconv_backward.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"
#include "test_support.hpp"

namespace tconv3d {
namespace {

int os_threads_of_this_process() {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  while (const dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.') ++count;
  closedir(dir);
  return count;
}

struct Case {
  LayerConfig config;
  std::vector<int64_t> input_shape;
  ConvGeometry geometry;
  std::vector<float> kernel, bias, input, expected;
};

// k3 s2 'same' with relu: a crop oneDNN sees as padding, bias and a post-op.
Case small_case() {
  Case c;
  c.config = parse_layer_config(
      R"({"filters": 16, "kernel_size": [3, 3, 3], "strides": [2, 2, 2], "padding": "same",
          "activation": "relu", "use_bias": true})");
  c.input_shape = {1, 6, 5, 7, 8};
  c.geometry = resolve_geometry(c.config, c.input_shape);
  std::mt19937_64 rng(7);
  c.kernel = testing::random_tensor(c.geometry.kernel_elements(), rng);
  c.bias = testing::random_tensor(c.geometry.out_channels, rng);
  c.input = testing::random_tensor(c.geometry.input_elements(), rng);
  LayerOptions reference;
  reference.backend = Backend::kReference;
  reference.threads = 1;  // starts no OpenMP worker before the thread check
  const ConvGeometry& g = c.geometry;
  const Layer layer = Layer::create(
      c.config, c.input_shape,
      ConstTensor{c.kernel.data(), {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels}},
      ConstTensor{c.bias.data(), {g.out_channels}}, reference);
  c.expected.resize(size_t(layer.output_elements()));
  layer.forward(c.input.data(), c.expected.data());
  return c;
}

// Runs first in its own process under CTest (one test per process), where
// no OpenMP worker exists yet: a second OS thread can only be oneDNN's.
TEST(OneDnnDeconv, OneThreadStaysOnOneThreadWhenTheCallerAsksForMore) {
  const Case c = small_case();
  if (os_threads_of_this_process() != 1)
    GTEST_SKIP() << "OpenMP workers already exist in this process (run this test alone, as CTest does)";
  omp_set_num_threads(4);
  const bench::OneDnnDeconv deconv(c.geometry, c.config.activation, c.kernel.data(), c.bias.data(), 1);
  EXPECT_EQ(deconv.threads(), 1);
  std::vector<float> out(c.expected.size());
  for (int run = 0; run < 3; ++run) deconv.run(c.input.data(), out.data());
  EXPECT_EQ(os_threads_of_this_process(), 1) << "oneDNN started OpenMP workers for a 1-thread run";
  EXPECT_EQ(omp_get_max_threads(), 4) << "the caller's OpenMP setting was not put back";
  EXPECT_LE(testing::scaled_max_error(out, c.expected), 1e-5);
}

TEST(OneDnnDeconv, TwoThreadsMatchTheReferenceAndLeaveTheCallerSettingAlone) {
  const Case c = small_case();
  omp_set_num_threads(1);
  const bench::OneDnnDeconv deconv(c.geometry, c.config.activation, c.kernel.data(), c.bias.data(), 2);
  std::vector<float> out(c.expected.size());
  deconv.run(c.input.data(), out.data());
  EXPECT_EQ(omp_get_max_threads(), 1);
  EXPECT_GE(os_threads_of_this_process(), 2) << "a 2-thread oneDNN run started no OpenMP worker";
  EXPECT_LE(testing::scaled_max_error(out, c.expected), 1e-5);
}

TEST(OneDnnDeconv, RejectsZeroThreads) {
  const Case c = small_case();
  EXPECT_THROW(bench::OneDnnDeconv(c.geometry, c.config.activation, c.kernel.data(), c.bias.data(), 0),
               std::runtime_error);
}

// Backward (bench/onednn_deconv_backward): oneDNN's dx, dK and db against
// the reference backward of the same linear layer, on the mappings that can
// go wrong: an odd 'same' crop (asymmetric padding), strides, dilation,
// channels_first, and no bias.
struct BackwardCase {
  const char* name;
  const char* config;
  std::vector<int64_t> input_shape;
};

void PrintTo(const BackwardCase& c, std::ostream* os) { *os << c.name; }

class OneDnnBackward : public ::testing::TestWithParam<BackwardCase> {};

TEST_P(OneDnnBackward, MatchesTheReferenceGradients) {
  const BackwardCase& param = GetParam();
  const LayerConfig config = parse_layer_config(param.config);
  ASSERT_EQ(config.activation.kind, ActivationKind::kLinear) << "oneDNN's backward is the linear layer's";
  const ConvGeometry g = resolve_geometry(config, param.input_shape);
  std::mt19937_64 rng(11);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
  const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
  const std::vector<float> dy = testing::random_tensor(g.output_elements(), rng);
  LayerOptions reference;
  reference.backend = Backend::kReference;
  reference.threads = 1;
  const Layer layer = Layer::create(
      config, param.input_shape,
      ConstTensor{kernel.data(), {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels}},
      config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{}, reference);
  std::vector<float> y(g.output_elements()), dx(x.size()), dk(kernel.size()), db(bias.size());
  layer.forward(x.data(), y.data());
  layer.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), config.use_bias ? db.data() : nullptr);

  const bench::OneDnnDeconvBackward onednn(g, kernel.data(), config.use_bias, 2);
  std::vector<float> odx(dx.size(), NAN), odk(dk.size(), NAN), odb(db.size(), NAN);
  onednn.run(x.data(), dy.data(), odx.data(), odb.data());
  onednn.kernel_gradient(odk.data());
  EXPECT_LE(testing::scaled_max_error(odx, dx), 1e-5) << "dx, " << onednn.data_impl();
  EXPECT_LE(testing::scaled_max_error(odk, dk), 1e-5) << "dK, " << onednn.weights_impl();
  if (config.use_bias) EXPECT_LE(testing::scaled_max_error(odb, db), 1e-5) << "db, " << onednn.weights_impl();
  EXPECT_FALSE(onednn.data_impl().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Mappings, OneDnnBackward,
    ::testing::Values(
        BackwardCase{"valid_k3s1",
                     R"({"filters": 8, "kernel_size": 3, "strides": 1, "padding": "valid", "use_bias": true})",
                     {1, 4, 5, 6, 16}},
        // k3 s2 'same' crops 1 per axis: padding_l 0, padding_r 1.
        BackwardCase{"same_odd_k3s2",
                     R"({"filters": 16, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": true})",
                     {2, 5, 4, 6, 8}},
        // k4 s1 'same' crops 3: padding_l 1, padding_r 2; mixed kernel sizes.
        BackwardCase{"same_odd_k4s1_mixed",
                     R"({"filters": 8, "kernel_size": [4, 2, 3], "strides": [1, 2, 1], "padding": "same",
                         "use_bias": true})",
                     {1, 5, 4, 6, 16}},
        BackwardCase{"valid_dilation2",
                     R"({"filters": 16, "kernel_size": 3, "strides": 1, "padding": "valid", "dilation_rate": 2,
                         "use_bias": true})",
                     {1, 6, 5, 4, 8}},
        BackwardCase{"same_dilation2_no_bias",
                     R"({"filters": 8, "kernel_size": 3, "strides": 1, "padding": "same", "dilation_rate": 2,
                         "use_bias": false})",
                     {1, 5, 6, 4, 16}},
        BackwardCase{"channels_first_k2s2",
                     R"({"filters": 16, "kernel_size": 2, "strides": 2, "padding": "valid",
                         "data_format": "channels_first", "use_bias": true})",
                     {1, 8, 4, 5, 3}},
        // Keras output_padding 1 on k3 s2 'same': padding_r -1 (a sample no input reaches).
        BackwardCase{"output_padding",
                     R"({"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1,
                         "use_bias": true})",
                     {1, 3, 4, 5, 8}},
        BackwardCase{"channels_first_same_odd",
                     R"({"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same",
                         "data_format": "channels_first", "use_bias": true})",
                     {2, 16, 3, 4, 5}}),
    [](const ::testing::TestParamInfo<BackwardCase>& info) { return std::string(info.param.name); });

TEST(OneDnnBackward, RejectsZeroThreads) {
  const LayerConfig config = parse_layer_config(R"({"filters": 4, "kernel_size": 2, "strides": 2})");
  const ConvGeometry g = resolve_geometry(config, {1, 2, 2, 2, 4});
  const std::vector<float> kernel(size_t(g.kernel_elements()), 0.5f);
  EXPECT_THROW(bench::OneDnnDeconvBackward(g, kernel.data(), true, 0), std::runtime_error);
}

// bf16 (bench/onednn_bf16): oneDNN's bf16 deconvolution against tconv3d's
// bf16 reference on the same bf16 inputs and weights: both accumulate in
// float32 and round once, so they differ by at most about one bf16 ulp.
class OneDnnBf16 : public ::testing::TestWithParam<BackwardCase> {};

TEST_P(OneDnnBf16, MatchesTheBf16Reference) {
  if (!cpu_features().avx512_bf16) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  const BackwardCase& param = GetParam();
  const LayerConfig config = parse_layer_config(param.config);
  const ConvGeometry g = resolve_geometry(config, param.input_shape);
  std::mt19937_64 rng(5);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
  const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
  std::vector<uint16_t> x_bf16(x.size());
  for (size_t i = 0; i < x.size(); ++i) x_bf16[i] = float_to_bf16(x[i]);
  LayerOptions reference;
  reference.backend = Backend::kReference;
  reference.threads = 1;
  reference.dtype = DataType::kBfloat16;
  const Layer layer = Layer::create(
      config, param.input_shape,
      ConstTensor{kernel.data(), {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels}},
      config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{}, reference);
  std::vector<uint16_t> expected_bits(size_t(layer.output_elements())), out_bits(expected_bits.size(), 0xffff);
  layer.forward_bf16(x_bf16.data(), expected_bits.data());
  const bench::OneDnnDeconvBf16 onednn(g, config.activation, kernel.data(), config.use_bias ? bias.data() : nullptr, 2);
  onednn.run(x_bf16.data(), out_bits.data());
  std::vector<float> expected(expected_bits.size()), out(out_bits.size());
  for (size_t i = 0; i < out.size(); ++i) {
    expected[i] = bf16_to_float(expected_bits[i]);
    out[i] = bf16_to_float(out_bits[i]);
  }
  EXPECT_LE(testing::scaled_max_error(out, expected), 1e-2) << onednn.impl();
}

INSTANTIATE_TEST_SUITE_P(
    Mappings, OneDnnBf16,
    ::testing::Values(
        BackwardCase{"same_odd_k3s2_relu",
                     R"({"filters": 16, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu",
                         "use_bias": true})",
                     {2, 5, 4, 6, 32}},
        BackwardCase{"dilation2_linear",
                     R"({"filters": 32, "kernel_size": 3, "strides": 1, "padding": "valid", "dilation_rate": 2,
                         "use_bias": true})",
                     {1, 6, 5, 4, 16}},
        BackwardCase{"channels_first_k2s2",
                     R"({"filters": 16, "kernel_size": 2, "strides": 2, "padding": "valid",
                         "data_format": "channels_first", "use_bias": false})",
                     {1, 32, 4, 5, 3}}),
    [](const ::testing::TestParamInfo<BackwardCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tconv3d

#else

TEST(OneDnnDeconv, NeedsOneDnn) { GTEST_SKIP() << "oneDNN is not in this build (apt: libdnnl-dev)"; }

#endif
