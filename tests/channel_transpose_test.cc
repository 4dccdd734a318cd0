// The AVX transposes of the channels_first layout change against a scalar
// loop: every border shape, destination alignment, streamed or not. Whole
// channels_first layers are tested in channels_first_test.cc.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernels/channel_transpose.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_XBYAK

TEST(ChannelTranspose, MatchesScalarForEveryShapeAndAlignment) {
  // The transposes are AVX code; every CPU with AVX2+FMA has AVX.
  if (const std::string why = testing::why_cpu_cannot_run(Isa::kAvx2); !why.empty()) GTEST_SKIP() << why;
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

#endif  // TCONV3D_HAVE_XBYAK

TEST(ChannelTranspose, BatchedMatchesScalarAcrossStripsAndSpans) {
  // transpose_batched's work items: strips of 16 along the short axis,
  // spans of 1024 along the long one, with partial ones at both ends; either
  // axis the long one; any thread count.
  std::mt19937_64 rng(12);
  const int64_t shapes[][3] = {{2, 37, 2100}, {2, 2100, 37}, {1, 16, 1024}, {3, 5, 7}, {1, 1, 3000}, {1, 4, 4096}};
  for (const auto& shape : shapes) {
    const int64_t batch = shape[0], rows = shape[1], cols = shape[2];
    const std::vector<float> in = testing::random_tensor(batch * rows * cols, rng);
    for (int threads : {1, 3}) {
      std::vector<float> out(in.size(), -7.0f);
      transpose_batched(in.data(), out.data(), batch, rows, cols, threads);
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            ASSERT_EQ(out[(n * cols + c) * rows + r], in[(n * rows + r) * cols + c])
                << batch << "x" << rows << "x" << cols << ", " << threads << " threads, at " << n << "," << r << ","
                << c;
    }
  }
}

}  // namespace
}  // namespace tconv3d
