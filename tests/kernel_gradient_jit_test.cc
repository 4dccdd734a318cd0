// The generated kernel-gradient (dK) kernels, Xbyak's and LLVM's, against a naive double-precision
// loop: random layers (every padding, output_padding, strides 1-3, dilation
// 1-2, batch > 1, odd sizes, 1 to 300 channels), taps that reach no output,
// rows long enough to take several calls, and bitwise identity across 1, 2,
// 3 and 7 threads. Each test runs once per ISA (tests/isa_harness.hpp); an
// ISA this CPU lacks is skipped with a message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "runtime/kernels/generated_kernel_gradient.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_XBYAK

std::string describe(const ConvGeometry& g) {
  std::ostringstream out;
  out << "batch " << g.batch << ", channels " << g.in_channels << " -> " << g.out_channels;
  const char* names[] = {"D", "H", "W"};
  for (int a = 0; a < 3; ++a) {
    const AxisGeometry& ax = g.axes[a];
    out << "; " << names[a] << ": in " << ax.in << " k " << ax.kernel << " s " << ax.stride << " d " << ax.dilation
        << " crop " << ax.crop_begin << " out " << ax.out;
  }
  return out.str();
}

// dK and, per element, the sum of |terms| and the number of terms, in double.
struct Expected {
  std::vector<double> dk, magnitude;
  std::vector<int64_t> terms;
};

Expected naive_kernel_gradient(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& dz) {
  const AxisGeometry &D = g.axes[0], &H = g.axes[1], &W = g.axes[2];
  const int64_t ci = g.in_channels, co = g.out_channels;
  Expected e;
  const size_t size = static_cast<size_t>(g.kernel_elements());
  e.dk.assign(size, 0.0);
  e.magnitude.assign(size, 0.0);
  e.terms.assign(size, 0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < D.in; ++id)
      for (int64_t ih = 0; ih < H.in; ++ih)
        for (int64_t iw = 0; iw < W.in; ++iw)
          for (int64_t kd = 0; kd < D.kernel; ++kd)
            for (int64_t kh = 0; kh < H.kernel; ++kh)
              for (int64_t kw = 0; kw < W.kernel; ++kw) {
                const int64_t od = id * D.stride + kd * D.dilation - D.crop_begin;
                const int64_t oh = ih * H.stride + kh * H.dilation - H.crop_begin;
                const int64_t ow = iw * W.stride + kw * W.dilation - W.crop_begin;
                if (od < 0 || od >= D.out || oh < 0 || oh >= H.out || ow < 0 || ow >= W.out) continue;
                const float* xv = &x[static_cast<size_t>((((n * D.in + id) * H.in + ih) * W.in + iw) * ci)];
                const float* dv = &dz[static_cast<size_t>((((n * D.out + od) * H.out + oh) * W.out + ow) * co)];
                const size_t block = static_cast<size_t>(((kd * H.kernel + kh) * W.kernel + kw) * co * ci);
                for (int64_t o = 0; o < co; ++o)
                  for (int64_t i = 0; i < ci; ++i) {
                    const double t = double(xv[i]) * double(dv[o]);
                    const size_t at = block + static_cast<size_t>(o * ci + i);
                    e.dk[at] += t;
                    e.magnitude[at] += std::fabs(t);
                    ++e.terms[at];
                  }
              }
  return e;
}

// Runs the generated kernel (dK prefilled with NaN: it must be overwritten)
// and checks every element against the naive loop, within the rounding bound
// of an fp32 sum of that many terms. Returns dK.
std::vector<float> check_against_naive(const ConvGeometry& g, const testing::Target& target, int threads,
                                       uint64_t seed, const std::string& what) {
  std::mt19937_64 rng(seed);
  const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
  const std::vector<float> dz = testing::random_tensor(g.output_elements(), rng);
  Problem problem;
  problem.geometry = g;
  const GeneratedKernelGradient dk_kernel(problem, target.backend, target.isa);
  std::vector<float> dk(static_cast<size_t>(g.kernel_elements()), std::numeric_limits<float>::quiet_NaN());
  dk_kernel.run(x.data(), dz.data(), dk.data(), threads);
  const Expected e = naive_kernel_gradient(g, x, dz);
  const double eps = std::ldexp(1.0, -24);
  for (size_t i = 0; i < dk.size(); ++i) {
    const double bound = double(e.terms[i] + 2) * eps * e.magnitude[i] + 1e-30;
    if (!(std::fabs(double(dk[i]) - e.dk[i]) <= bound)) {
      ADD_FAILURE() << what << ": dK element " << i << " is " << dk[i] << ", expected " << e.dk[i] << " (bound "
                    << bound << ", " << e.terms[i] << " terms); " << describe(g) << "\n"
                    << dk_kernel.plan().to_string();
      break;
    }
  }
  return dk;
}

AxisGeometry random_axis(std::mt19937_64& rng, int64_t max_in, int64_t max_kernel) {
  auto pick = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    AxisGeometry a;
    a.in = pick(1, max_in);
    a.kernel = pick(1, max_kernel);
    a.stride = pick(1, 3);
    a.dilation = pick(1, 2);
    const Padding padding = pick(0, 1) ? Padding::kSame : Padding::kValid;
    std::optional<int64_t> output_padding;
    if (pick(0, 2) == 0) output_padding = pick(0, a.stride - 1);
    a.out = keras_output_length(a.in, a.kernel, a.stride, a.dilation, padding, output_padding);
    a.crop_begin = keras_crop_begin(a.kernel, a.stride, a.dilation, padding, output_padding);
    if (a.out > 0) return a;
  }
}

// A random layer whose naive loop stays under ~3 M products.
ConvGeometry random_geometry(std::mt19937_64& rng) {
  auto pick = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    ConvGeometry g;
    g.batch = pick(1, 3);
    const bool wide = pick(0, 3) == 0;
    g.in_channels = wide ? pick(1, 300) : pick(1, 40);
    g.out_channels = wide && pick(0, 1) ? pick(1, 300) : pick(1, 40);
    const int64_t max_in = wide ? 4 : 7, max_kernel = wide ? 3 : 4;
    for (int a = 0; a < 3; ++a) g.axes[a] = random_axis(rng, a == 2 ? max_in + 6 : max_in, max_kernel);
    const double products = double(g.batch) * g.axes[0].in * g.axes[1].in * g.axes[2].in * g.axes[0].kernel *
                            g.axes[1].kernel * g.axes[2].kernel * g.in_channels * g.out_channels;
    if (products <= 3e6) return g;
  }
}

ConvGeometry make_geometry(int64_t batch, int64_t ci, int64_t co, const std::array<AxisGeometry, 3>& axes) {
  ConvGeometry g;
  g.batch = batch;
  g.in_channels = ci;
  g.out_channels = co;
  g.axes = axes;
  return g;
}

AxisGeometry axis(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                  std::optional<int64_t> output_padding = std::nullopt) {
  AxisGeometry a;
  a.in = in;
  a.kernel = kernel;
  a.stride = stride;
  a.dilation = dilation;
  a.out = keras_output_length(in, kernel, stride, dilation, padding, output_padding);
  a.crop_begin = keras_crop_begin(kernel, stride, dilation, padding, output_padding);
  return a;
}

class KernelGradientJitTest : public testing::TargetTest {};

TEST_P(KernelGradientJitTest, MatchesNaiveLoopOnRandomLayers) {
  std::mt19937_64 rng(4242 + static_cast<int>(isa()));
  constexpr int kCases = 300;
  for (int i = 0; i < kCases; ++i) {
    const ConvGeometry g = random_geometry(rng);
    check_against_naive(g, target(), 1 + i % 3, 100 + i, "case " + std::to_string(i));
    if (HasFailure()) return;
  }
}

TEST_P(KernelGradientJitTest, BitwiseIdenticalAcrossThreadCounts) {
  std::mt19937_64 rng(99 + static_cast<int>(isa()));
  std::vector<ConvGeometry> layers = {
      // Suite-like layers at reduced size: many pieces per (kd, kh).
      make_geometry(
          2, 64, 48,
          {axis(4, 3, 2, 1, Padding::kSame), axis(5, 3, 2, 1, Padding::kSame), axis(6, 3, 2, 1, Padding::kSame)}),
      make_geometry(
          1, 40, 4,
          {axis(5, 4, 2, 1, Padding::kSame), axis(5, 4, 2, 1, Padding::kSame), axis(9, 4, 2, 1, Padding::kSame)}),
      make_geometry(
          3, 37, 129,
          {axis(3, 2, 2, 1, Padding::kValid), axis(4, 2, 2, 1, Padding::kValid), axis(7, 2, 2, 1, Padding::kValid)}),
      // Wide ci: AVX-512 takes 3-vector tiles (a one-vector tail block, and
      // a ragged last vector for 200 channels).
      make_geometry(
          1, 256, 20,
          {axis(2, 2, 2, 1, Padding::kValid), axis(3, 2, 2, 1, Padding::kValid), axis(5, 2, 2, 1, Padding::kValid)}),
      make_geometry(
          2, 200, 9,
          {axis(2, 3, 2, 1, Padding::kSame), axis(2, 3, 2, 1, Padding::kSame), axis(4, 3, 2, 1, Padding::kSame)}),
  };
  for (int i = 0; i < 5; ++i) layers.push_back(random_geometry(rng));
  for (size_t l = 0; l < layers.size(); ++l) {
    const ConvGeometry& g = layers[l];
    const std::string what = "layer " + std::to_string(l);
    const std::vector<float> one = check_against_naive(g, target(), 1, 7000 + l, what);
    for (int threads : {2, 3, 7}) {
      const std::vector<float> many = check_against_naive(g, target(), threads, 7000 + l, what);
      ASSERT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float)))
          << what << ": " << threads << " threads differ from 1; " << describe(g);
    }
  }
}

// Taps that reach no output (a large crop on a 1-voxel input) must still
// leave zeros, not whatever dK held.
TEST_P(KernelGradientJitTest, TapsReachingNoOutputAreZero) {
  AxisGeometry d = axis(1, 4, 1, 2, Padding::kSame);  // out 1: only the middle tap lands
  const ConvGeometry g = make_geometry(2, 19, 21, {d, d, axis(3, 3, 3, 1, Padding::kSame, 0)});
  const std::vector<float> dk = check_against_naive(g, target(), 3, 5, "sparse taps");
  int64_t zeros = 0;
  for (float v : dk) zeros += v == 0.0f ? 1 : 0;
  EXPECT_GT(zeros, 0) << "expected whole (kd, kh) blocks of zeros";
}

// Rows of 64 voxels and 256 channels: a few pairs fill the L2 budget of one
// call, so the sums continue across calls (accumulate from dK).
TEST_P(KernelGradientJitTest, LongRowsSpanSeveralCalls) {
  const ConvGeometry g = make_geometry(
      1, 256, 200,
      {axis(2, 1, 1, 1, Padding::kValid), axis(3, 2, 1, 1, Padding::kValid), axis(64, 3, 1, 2, Padding::kSame)});
  Problem problem;
  problem.geometry = g;
  const int64_t pairs = int64_t(codegen::kernel_gradient_row_pairs(g, 0, 0).size() / 2);
  ASSERT_LT(GeneratedKernelGradient(problem, target().backend, isa()).plan().pairs_per_call, pairs)
      << "the case no longer needs several calls per (kd, kh)";
  const std::vector<float> one = check_against_naive(g, target(), 1, 11, "long rows");
  const std::vector<float> two = check_against_naive(g, target(), 2, 11, "long rows");
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
}

TEST_P(KernelGradientJitTest, NameAndPlanDescribeTheKernel) {
  Problem problem;
  problem.geometry = make_geometry(
      1, 24, 20,
      {axis(7, 3, 2, 1, Padding::kSame, 1), axis(9, 3, 2, 1, Padding::kSame, 1), axis(11, 3, 2, 1, Padding::kSame, 1)});
  const GeneratedKernelGradient dk_kernel(problem, target().backend, isa());
  const std::string name = dk_kernel.kernel_name();
  EXPECT_EQ(0u, name.rfind("tconv3d_dk_f32_k3x3x3_s2x2x2_d1x1x1_c24to20_w11to22c0__", 0)) << name;
  EXPECT_NE(std::string::npos, name.find(target().isa_name())) << name;
  const bool llvm_suffix = name.size() > 6 && name.compare(name.size() - 6, 6, "__llvm") == 0;
  EXPECT_EQ(target().backend == Backend::kLlvm, llvm_suffix) << name;
  EXPECT_NE(std::string::npos, dk_kernel.plan().to_string().find("row tiles")) << dk_kernel.plan().to_string();
}

INSTANTIATE_TEST_SUITE_P(Targets, KernelGradientJitTest,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

#ifdef TCONV3D_HAVE_LLVM
// Both emitters read the same plan and sum every dK element in the same
// order with fused multiply-adds: their results are bitwise equal.
class LlvmKernelGradientTest : public testing::TargetTest {};

TEST_P(LlvmKernelGradientTest, GivesTheSameBitsAsXbyak) {
  std::mt19937_64 rng(515 + static_cast<int>(isa()));
  for (int i = 0; i < 60; ++i) {
    const ConvGeometry g = random_geometry(rng);
    std::mt19937_64 data(900 + i);
    const std::vector<float> x = testing::random_tensor(g.input_elements(), data);
    const std::vector<float> dz = testing::random_tensor(g.output_elements(), data);
    Problem problem;
    problem.geometry = g;
    std::vector<float> by_llvm(static_cast<size_t>(g.kernel_elements())), by_xbyak(by_llvm.size());
    GeneratedKernelGradient(problem, Backend::kLlvm, isa()).run(x.data(), dz.data(), by_llvm.data(), 1 + i % 3);
    GeneratedKernelGradient(problem, Backend::kXbyak, isa()).run(x.data(), dz.data(), by_xbyak.data(), 2);
    ASSERT_EQ(0, std::memcmp(by_llvm.data(), by_xbyak.data(), by_llvm.size() * sizeof(float)))
        << "case " << i << ": " << describe(g);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, LlvmKernelGradientTest, ::testing::ValuesIn(testing::targets({Backend::kLlvm})),
                         testing::target_name);
#endif

// The plan alone, on every ISA whatever this CPU runs: tiles fit the registers
// and cover every (kw, co) row exactly once; ci blocks cover every channel.
class KernelGradientPlanTest : public ::testing::TestWithParam<Isa> {};

TEST_P(KernelGradientPlanTest, TilesCoverEveryRowOnceAndFitTheRegisters) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    Problem problem;
    problem.geometry = random_geometry(rng);
    const codegen::KernelGradientPlan plan = codegen::make_kernel_gradient_plan(problem, GetParam());
    const ConvGeometry& g = problem.geometry;
    std::vector<int> seen(static_cast<size_t>(g.axes[2].kernel * g.out_channels), 0);
    int tile = 0;
    for (const codegen::RowTileClass& c : plan.classes) {
      EXPECT_EQ(tile, c.first_tile);
      tile += c.count;
      for (int t = 0; t < c.count; ++t)
        for (int k = 0; k < c.kw_count; ++k)
          for (int o = 0; o < c.co_count; ++o)
            ++seen[static_cast<size_t>((c.kw_first + k) * g.out_channels + c.co_first + t * c.co_count + o)];
    }
    EXPECT_EQ(tile, plan.tiles);
    for (int s : seen) ASSERT_EQ(1, s) << describe(g);
    EXPECT_LE(plan.rows * plan.ci_vectors + plan.ci_vectors + 1, plan.vector_registers) << describe(g);
    const int64_t covered = int64_t(plan.uniform_blocks) * plan.ci_vectors * plan.lanes +
                            (plan.tail_block_vectors ? (plan.tail_block_vectors - 1) * plan.lanes +
                                                           (plan.tail_lanes ? plan.tail_lanes : plan.lanes)
                                                     : 0);
    EXPECT_EQ(g.in_channels, covered) << describe(g);
  }
}

ConvGeometry unet_up_like(int64_t ci, int64_t co) {
  return make_geometry(
      1, ci, co,
      {axis(16, 2, 2, 1, Padding::kValid), axis(16, 2, 2, 1, Padding::kValid), axis(16, 2, 2, 1, Padding::kValid)});
}

// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The rule of make_kernel_gradient_plan: 128+ input channels with AVX-512
// take tiles of 3 ci vectors and at most 8 rows; fewer channels, and AVX2,
// keep the cost model's choice.
TEST(KernelGradientPlanRule, WideAvx512CiTakesThreeVectorTilesOfAtMostEightRows) {
  for (int64_t ci : {128, 200, 256, 512}) {
    Problem problem;
    problem.geometry = unet_up_like(ci, 128);
    const codegen::KernelGradientPlan plan = codegen::make_kernel_gradient_plan(problem, Isa::kAvx512);
    EXPECT_EQ(3, plan.ci_vectors) << ci;
    EXPECT_EQ(8, plan.rows) << ci;
  }
  Problem narrow;
  narrow.geometry = unet_up_like(64, 32);
  EXPECT_EQ(2, codegen::make_kernel_gradient_plan(narrow, Isa::kAvx512).ci_vectors);
  Problem wide;
  wide.geometry = unet_up_like(256, 128);
  const codegen::KernelGradientPlan avx2 = codegen::make_kernel_gradient_plan(wide, Isa::kAvx2);
  EXPECT_LE(avx2.rows * avx2.ci_vectors + avx2.ci_vectors + 1, 16);
  EXPECT_GT(avx2.rows * avx2.ci_vectors, 8);
}

TEST(KernelGradientPlanRule, ForcedTileIsTakenAndABadOneIsAnErrorNamingTheVariable) {
  Problem problem;
  problem.geometry = unet_up_like(256, 128);
  {
    const ScopedEnv force("TCONV3D_DK_TILE", "13,2");
    const codegen::KernelGradientPlan plan = codegen::make_kernel_gradient_plan(problem, Isa::kAvx512);
    EXPECT_EQ(2, plan.ci_vectors);
    EXPECT_EQ(13, plan.rows);
  }
  for (const char* bad : {"", "9", "0,3", "20,3", "3,9", "x,y"}) {
    const ScopedEnv force("TCONV3D_DK_TILE", bad);
    try {
      codegen::make_kernel_gradient_plan(problem, Isa::kAvx512);
      ADD_FAILURE() << "expected an error for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string::npos, std::string(e.what()).find("TCONV3D_DK_TILE")) << e.what();
    }
  }
}

TEST_P(KernelGradientPlanTest, UnresolvedIsaIsAnError) {
  Problem problem;
  problem.geometry = make_geometry(
      1, 4, 4,
      {axis(2, 2, 1, 1, Padding::kValid), axis(2, 2, 1, 1, Padding::kValid), axis(2, 2, 1, 1, Padding::kValid)});
  EXPECT_THROW(codegen::make_kernel_gradient_plan(problem, Isa::kAuto), Error);
  EXPECT_THROW(GeneratedKernelGradient(problem, Backend::kReference, GetParam()), Error);
}

// Forcing an ISA the CPU lacks (here: hidden) is an error naming it, never a crash.
TEST(KernelGradientJit, ForcedIsaTheCpuLacksIsAnError) {
  Problem problem;
  problem.geometry = make_geometry(
      1, 4, 4,
      {axis(2, 2, 1, 1, Padding::kValid), axis(2, 2, 1, 1, Padding::kValid), axis(2, 2, 1, 1, Padding::kValid)});
  const ScopedCpuFeatureMask hide(CpuFeature::kAvx512);
  try {
    GeneratedKernelGradient kernel(problem, Backend::kXbyak, Isa::kAvx512);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("avx512")) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, KernelGradientPlanTest, ::testing::ValuesIn(testing::all_isas()), testing::isa_name);

#else
TEST(KernelGradientJitTest, NeedsXbyak) { GTEST_SKIP() << "built without xbyak"; }
#endif

}  // namespace
}  // namespace tconv3d
