// The channels_first layout change of the xbyak backend: the AVX transposes
// against a scalar loop (every border shape, destination alignment, streamed
// or not), and whole channels_first layers against their channels_last twins,
// including outputs large enough to be streamed and weights large enough to
// split the channel groups.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_XBYAK

bool cpu_has_avx() {
  const CpuFeatures& cpu = cpu_features();
  return cpu.avx2_fma || cpu.avx512;
}

TEST(ChannelTranspose, MatchesScalarForEveryShapeAndAlignment) {
  if (!cpu_has_avx()) GTEST_SKIP() << "this CPU lacks AVX: the xbyak backend does not run here";
  std::mt19937_64 rng(11);
  for (int64_t rows = 1; rows <= 41; rows += (rows < 20 ? 1 : 7)) {
    for (int64_t cols = 1; cols <= 19; cols += 3) {
      for (int64_t offset : {0, 1, 4, 12}) {
        for (bool stream : {false, true}) {
          const int64_t ss = cols + 3, ds = (rows + 15) / 16 * 16 + 16;
          const std::vector<float> src = testing::random_tensor(rows * ss, rng);
          std::vector<float> buffer(static_cast<size_t>(cols * ds + 32), -7.0f);
          // Start at a 64-byte boundary plus `offset` floats.
          const auto base = reinterpret_cast<uintptr_t>(buffer.data());
          float* dst = buffer.data() + (64 - base % 64) % 64 / 4 + offset;
          transpose_block(src.data(), ss, dst, ds, rows, cols, stream);
          for (int64_t j = 0; j < cols; ++j)
            for (int64_t i = 0; i < ds && dst + j * ds + i < buffer.data() + buffer.size(); ++i) {
              const float expected = i < rows ? src[static_cast<size_t>(i * ss + j)] : -7.0f;
              ASSERT_EQ(dst[j * ds + i], expected)
                  << "rows " << rows << " cols " << cols << " offset " << offset << " stream " << stream << " at ("
                  << j << ", " << i << ")";
            }
        }
      }
    }
  }
}

// Runs `config` on a channels_last input and on its channels_first twin and
// requires the same numbers: the layout change must be exact.
void expect_formats_agree(LayerConfig config, const std::vector<int64_t>& cl_shape, int threads, int64_t misalign,
                          bool per_group) {
  std::mt19937_64 rng(3);
  const int64_t n = cl_shape[0], d = cl_shape[1], h = cl_shape[2], w = cl_shape[3], c = cl_shape[4];
  const std::vector<int64_t> kshape = {config.kernel_size[0], config.kernel_size[1], config.kernel_size[2],
                                       config.filters, c};
  const std::vector<float> kernel = testing::random_tensor(kshape[0] * kshape[1] * kshape[2] * kshape[3] * c, rng);
  const std::vector<float> bias = testing::random_tensor(config.filters, rng);
  const std::vector<float> input_cl = testing::random_tensor(n * d * h * w * c, rng);
  std::vector<float> input_cf(input_cl.size());
  const int64_t spatial = d * h * w;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t v = 0; v < spatial; ++v)
      for (int64_t ch = 0; ch < c; ++ch)
        input_cf[static_cast<size_t>((b * c + ch) * spatial + v)] = input_cl[static_cast<size_t>((b * spatial + v) * c + ch)];
  LayerOptions options;
  options.backend = Backend::kXbyak;
  options.threads = threads;
  const ConstTensor k{kernel.data(), kshape};
  const ConstTensor bt{bias.data(), {config.filters}};
  config.data_format = DataFormat::kChannelsLast;
  const Layer last = Layer::create(config, cl_shape, k, bt, options);
  config.data_format = DataFormat::kChannelsFirst;
  const Layer first = Layer::create(config, {n, c, d, h, w}, k, bt, options);
  ASSERT_EQ(first.kernel_name().find("_per_group") != std::string::npos, per_group)
      << first.kernel_name();
  std::vector<float> out_cl(static_cast<size_t>(last.output_elements()));
  std::vector<float> out_cf(static_cast<size_t>(first.output_elements() + misalign + 16), NAN);
  last.forward(input_cl.data(), out_cl.data());
  const auto base = reinterpret_cast<uintptr_t>(out_cf.data());
  float* y = out_cf.data() + (64 - base % 64) % 64 / 4 + misalign;
  first.forward(input_cf.data(), y);
  const Shape5 s = first.output_shape();  // NCDHW
  const int64_t out_spatial = s[2] * s[3] * s[4], oc = s[1];
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t ch = 0; ch < oc; ++ch)
      for (int64_t v = 0; v < out_spatial; ++v)
        ASSERT_EQ(y[(b * oc + ch) * out_spatial + v], out_cl[static_cast<size_t>((b * out_spatial + v) * oc + ch)])
            << "n " << b << " channel " << ch << " voxel " << v << " misalign " << misalign;
}

TEST(ChannelTranspose, LargeStreamedOutputMatchesChannelsLast) {
  if (!cpu_has_avx()) GTEST_SKIP() << "this CPU lacks AVX: the xbyak backend does not run here";
  LayerConfig config;
  config.filters = 28;  // a 2.4 MB output: streamed
  config.kernel_size = {2, 2, 2};
  config.strides = {2, 2, 2};
  for (int64_t misalign : {0, 1, 5}) expect_formats_agree(config, {1, 12, 14, 16, 9}, 1 + misalign % 2, misalign, false);
}

TEST(ChannelTranspose, SplitChannelGroupsMatchChannelsLast) {
  if (!cpu_has_avx()) GTEST_SKIP() << "this CPU lacks AVX: the xbyak backend does not run here";
  LayerConfig config;
  config.filters = 200;
  config.kernel_size = {3, 3, 3};
  config.strides = {2, 1, 2};
  config.activation.kind = ActivationKind::kRelu;
  config.activation.name = "relu";
  expect_formats_agree(config, {2, 2, 3, 9, 160}, 2, 3, true);
}

#endif  // TCONV3D_HAVE_XBYAK

}  // namespace
}  // namespace tconv3d
