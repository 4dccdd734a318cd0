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

}  // namespace
}  // namespace tconv3d

#else

TEST(OneDnnDeconv, NeedsOneDnn) { GTEST_SKIP() << "oneDNN is not in this build (apt: libdnnl-dev)"; }

#endif
