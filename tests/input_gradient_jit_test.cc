// The generated input gradient (dx from dz, plan/input_gradient_plan.hpp)
// against a naive double-precision loop written here from the definition:
//   dx[n, i, ci] = sum over taps a and filters co, with per axis
//                  o = i*stride + a*dilation - crop_begin inside the output,
//                  of dz[n, o, co] * K[a, co, ci]
// on random Keras layers (every padding, output_padding, strides 1-3,
// dilation), on hand-made geometries (stride and dilation together, crops,
// outputs longer than the full result), the suite's layers cut down, a plan
// that splits its channel groups; bitwise identity across thread counts; the
// plan's own contract (names, keys, W-tap validity). Each test runs for every
// generated backend on every ISA (tests/isa_harness.hpp): an ISA this CPU
// lacks skips visibly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/problem.hpp"
#include "plan/input_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "plan/plan.hpp"
#include "runtime/kernels/generated_input_gradient.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"
#include "tools/support/suite.hpp"

namespace tconv3d {
namespace {

constexpr double kTolerance = 2e-5;

// Channels_last dz (N, oD, oH, oW, Co), Keras kernel (kd, kh, kw, Co, Ci).
std::vector<double> naive_input_gradient(const ConvGeometry& g, const std::vector<float>& dz,
                                         const std::vector<float>& kernel) {
  const auto& [D, H, W] = g.axes;
  const int64_t ci_n = g.in_channels, co_n = g.out_channels;
  std::vector<double> dx(static_cast<size_t>(g.input_elements()), 0.0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < D.in; ++id)
      for (int64_t ih = 0; ih < H.in; ++ih)
        for (int64_t iw = 0; iw < W.in; ++iw)
          for (int64_t ad = 0; ad < D.kernel; ++ad) {
            const int64_t od = id * D.stride + ad * D.dilation - D.crop_begin;
            if (od < 0 || od >= D.out) continue;
            for (int64_t ah = 0; ah < H.kernel; ++ah) {
              const int64_t oh = ih * H.stride + ah * H.dilation - H.crop_begin;
              if (oh < 0 || oh >= H.out) continue;
              for (int64_t aw = 0; aw < W.kernel; ++aw) {
                const int64_t ow = iw * W.stride + aw * W.dilation - W.crop_begin;
                if (ow < 0 || ow >= W.out) continue;
                const float* z = &dz[static_cast<size_t>((((n * D.out + od) * H.out + oh) * W.out + ow) * co_n)];
                const float* k = &kernel[static_cast<size_t>(((ad * H.kernel + ah) * W.kernel + aw) * co_n * ci_n)];
                double* x = &dx[static_cast<size_t>((((n * D.in + id) * H.in + ih) * W.in + iw) * ci_n)];
                for (int64_t co = 0; co < co_n; ++co)
                  for (int64_t ci = 0; ci < ci_n; ++ci) x[ci] += double(z[co]) * double(k[co * ci_n + ci]);
              }
            }
          }
  return dx;
}

std::string describe(const ConvGeometry& g) {
  std::ostringstream out;
  out << "batch " << g.batch << ", " << g.in_channels << " -> " << g.out_channels << " channels";
  for (const AxisGeometry& a : g.axes)
    out << "; in " << a.in << " k" << a.kernel << " s" << a.stride << " d" << a.dilation << " crop " << a.crop_begin
        << " out " << a.out;
  return out.str();
}

// A geometry built by hand: stride and dilation together, any crop, an
// output shorter or longer (negative crop_end) than the full result.
ConvGeometry random_geometry(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    ConvGeometry g;
    g.batch = pick(1, 3);
    g.in_channels = pick(1, 40);
    g.out_channels = pick(1, 40);
    for (AxisGeometry& a : g.axes) {
      a.in = pick(1, 7);
      a.kernel = pick(1, 4);
      a.stride = pick(1, 3);
      a.dilation = pick(1, 2);
      a.crop_begin = pick(0, a.full_out() - 1);
      a.out = pick(1, a.full_out() - a.crop_begin + a.stride);
    }
    try {
      validate_geometry(g);
    } catch (const Error&) {
      continue;
    }
    if (g.flops() <= 2e7) return g;
  }
}

class InputGradientJitTest : public testing::TargetTest {
 protected:
  // The scaled max error of the generated dx against the naive loop.
  double error_of(const ConvGeometry& g, uint64_t seed, int threads = 1) {
    std::mt19937_64 rng(seed);
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> dz = testing::random_tensor(g.output_elements(), rng);
    const Problem problem = make_problem(g, /*has_bias=*/true, Activation{});
    const GeneratedInputGradient dx_kernel(problem, kernel.data(), target().backend, isa());
    std::vector<float> dx(static_cast<size_t>(g.input_elements()), std::nanf(""));
    dx_kernel.run(dz.data(), dx.data(), threads);
    const std::vector<double> expected = naive_input_gradient(g, dz, kernel);
    return testing::scaled_max_error(dx, std::vector<float>(expected.begin(), expected.end()));
  }
};

TEST_P(InputGradientJitTest, MatchesNaiveLoopOnRandomKerasLayers) {
  std::mt19937_64 rng(4242 + static_cast<int>(isa()));
  for (int i = 0; i < 200; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    g.data_format = DataFormat::kChannelsLast;  // the backward kernels take channels_last arrays
    ASSERT_LE(error_of(g, 100 + i, 1 + i % 2), kTolerance) << "case " << i << ": " << c.describe();
  }
}

TEST_P(InputGradientJitTest, MatchesNaiveLoopOnStridedDilatedCroppedGeometries) {
  std::mt19937_64 rng(99 + static_cast<int>(isa()));
  for (int i = 0; i < 200; ++i) {
    const ConvGeometry g = random_geometry(rng);
    ASSERT_LE(error_of(g, 7000 + i, 1 + i % 3), kTolerance) << "case " << i << ": " << describe(g);
  }
}

// Every suite layer at its own channels and kernel, the spatial size cut down.
TEST_P(InputGradientJitTest, MatchesNaiveLoopOnSuiteLayers) {
  const std::vector<SuiteLayer> suite = load_suite(std::string(TCONV3D_SOURCE_DIR) + "/bench/layers.json");
  ASSERT_FALSE(suite.empty());
  int index = 0;
  for (const SuiteLayer& layer : suite) {
    std::vector<int64_t> shape = layer.input_shape;
    const bool last = layer.config.data_format == DataFormat::kChannelsLast;
    for (int a = 0; a < 3; ++a) {
      int64_t& s = shape[static_cast<size_t>(a + (last ? 1 : 2))];
      s = std::min<int64_t>(s, 5);
    }
    shape[0] = std::min<int64_t>(shape[0], 2);
    ConvGeometry g = resolve_geometry(layer.config, shape);
    g.data_format = DataFormat::kChannelsLast;
    EXPECT_LE(error_of(g, 300 + index++, 2), kTolerance) << layer.name << ": " << describe(g);
  }
}

// Weights beyond half the L2 per row: one kernel per channel group.
TEST_P(InputGradientJitTest, SplitChannelGroups) {
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = 165;  // the gradient's lanes: several groups and a tail
  g.out_channels = 70;  // the contraction
  for (AxisGeometry& a : g.axes) a = {3, 3, 2, 1, 1, 5};
  g.axes[2] = {4, 3, 2, 1, 1, 7};
  const codegen::KernelPlan plan = codegen::make_input_gradient_plan(make_problem(g, true, Activation{}), isa());
  ASSERT_TRUE(plan.split_groups) << plan.to_string();
  EXPECT_LE(error_of(g, 55, 2), kTolerance);
}

TEST_P(InputGradientJitTest, BitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(5 + static_cast<int>(isa()));
  for (int i = 0; i < 6; ++i) {
    ConvGeometry g = random_geometry(rng);
    g.batch = 2;
    g.axes[0].in = 6;  // enough rows to split among 7 threads
    g.axes[0].out = g.axes[0].full_out() - g.axes[0].crop_begin;
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> dz = testing::random_tensor(g.output_elements(), rng);
    const GeneratedInputGradient dx_kernel(make_problem(g, false, Activation{}), kernel.data(), target().backend,
                                           isa());
    std::vector<float> first(static_cast<size_t>(g.input_elements()));
    dx_kernel.run(dz.data(), first.data(), 1);
    for (int threads : {2, 3, 7}) {
      std::vector<float> dx(first.size(), std::nanf(""));
      dx_kernel.run(dz.data(), dx.data(), threads);
      EXPECT_EQ(0, std::memcmp(dx.data(), first.data(), first.size() * sizeof(float)))
          << threads << " threads, " << describe(g);
    }
  }
}

TEST_P(InputGradientJitTest, NamesTheKernel) {
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = 64;
  g.out_channels = 32;
  for (AxisGeometry& a : g.axes) a = {16, 3, 2, 1, 1, 32};
  const GeneratedInputGradient dx_kernel(make_problem(g, true, Activation{}), std::vector<float>(g.kernel_elements()).data(),
                                         target().backend, isa());
  const std::string name = dx_kernel.kernel_name();
  EXPECT_EQ(0u, name.rfind("tconv3d_dx_f32_k3x3x3_s2x2x2_d1x1x1_c64to32_w16to32c1__" + target().isa_name(), 0)) << name;
  EXPECT_EQ(target().backend == Backend::kLlvm, name.find("__llvm") != std::string::npos) << name;
  EXPECT_EQ(dx_kernel.backend(), target().backend);
  EXPECT_EQ(dx_kernel.isa(), target().isa_name());
}

// A layer's WeightStore holds the forward packing and the transposed one side by side.
TEST_P(InputGradientJitTest, SharesTheLayersWeightStore) {
  std::mt19937_64 rng(31);
  const ConvGeometry g = random_geometry(rng);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> dz = testing::random_tensor(g.output_elements(), rng);
  const Problem problem = make_problem(g, true, Activation{});
  WeightStore weights(kernel, testing::random_tensor(g.out_channels, rng));
  weights.packed_for(codegen::make_plan(problem, isa()));
  const GeneratedInputGradient from_store(problem, weights, target().backend, isa());
  EXPECT_EQ(weights.packs(), 2);
  const GeneratedInputGradient from_floats(problem, kernel.data(), target().backend, isa());
  std::vector<float> a(static_cast<size_t>(g.input_elements())), b(a.size(), 1.0f);
  from_store.run(dz.data(), a.data(), 2);
  from_floats.run(dz.data(), b.data(), 1);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << describe(g);
}

INSTANTIATE_TEST_SUITE_P(Targets, InputGradientJitTest,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

// The plan alone: runs on every host, whatever ISA it has.
class InputGradientPlanTest : public ::testing::TestWithParam<Isa> {};

TEST_P(InputGradientPlanTest, KeysAndNamesDifferFromTheForwardPlan) {
  std::mt19937_64 rng(17);
  for (int i = 0; i < 50; ++i) {
    const ConvGeometry g = random_geometry(rng);
    const Problem problem = make_problem(g, true, Activation{});
    const codegen::KernelPlan forward = codegen::make_plan(problem, GetParam());
    const codegen::KernelPlan dx = codegen::make_input_gradient_plan(problem, GetParam());
    EXPECT_EQ(forward.pass, codegen::PlanPass::kForward);
    EXPECT_EQ(dx.pass, codegen::PlanPass::kInputGradient);
    EXPECT_NE(forward.cache_key(), dx.cache_key());
    EXPECT_NE(forward.weight_layout_key(), dx.weight_layout_key());  // one WeightStore may hold both
    EXPECT_EQ(0u, codegen::kernel_name(dx).rfind("tconv3d_dx_", 0));
    EXPECT_EQ(dx.w_pack, 1);
    EXPECT_FALSE(dx.has_bias);
    EXPECT_FALSE(dx.activation_row_pass);
    // The kernel's view: reads dz, writes dx.
    EXPECT_EQ(dx.geometry.in_channels, g.out_channels);
    EXPECT_EQ(dx.geometry.out_channels, g.in_channels);
    for (int a = 0; a < 3; ++a) {
      EXPECT_EQ(dx.geometry.axes[a].in, g.axes[a].out);
      EXPECT_EQ(dx.geometry.axes[a].out, g.axes[a].in);
      ASSERT_EQ(dx.phases[a].size(), 1u);
    }
    EXPECT_EQ(dx.w_input_step(), g.axes[2].stride);
    EXPECT_EQ(dx.w_output_step(), 1);
    EXPECT_FALSE(dx.to_string().empty());
  }
}

// Every W tap's validity, and the interior segments, from the definition.
TEST_P(InputGradientPlanTest, WTapValidityMatchesTheDefinition) {
  std::mt19937_64 rng(23);
  for (int i = 0; i < 100; ++i) {
    const ConvGeometry g = random_geometry(rng);
    const codegen::KernelPlan dx = codegen::make_input_gradient_plan(make_problem(g, true, Activation{}), GetParam());
    const AxisGeometry& w = g.axes[2];
    const auto& taps = dx.phases[2][0].taps;
    ASSERT_EQ(static_cast<int64_t>(taps.size()), w.kernel);
    for (const codegen::WSegment& s : dx.w_segments[0]) {
      for (int64_t tile = 0; tile < s.tiles; ++tile) {
        for (int p = 0; p < s.width; ++p) {
          const int64_t iw = s.first + tile * s.width + p;
          for (size_t t = 0; t < taps.size(); ++t) {
            const int64_t ow = iw * w.stride + taps[t].tap * w.dilation - w.crop_begin;
            const bool valid = ow >= 0 && ow < w.out;
            EXPECT_EQ(dx.w_tap_valid(0, iw, t), valid) << describe(g) << " voxel " << iw << " tap " << t;
            if (s.interior) EXPECT_TRUE(valid) << describe(g) << " voxel " << iw << " tap " << t;
          }
        }
      }
    }
    for (int a = 0; a < 2; ++a) {
      const AxisGeometry& ax = g.axes[a];
      for (int64_t i = 0; i < ax.in; ++i) {
        std::vector<std::pair<int64_t, int64_t>> expected;
        for (int64_t k = 0; k < ax.kernel; ++k) {
          const int64_t o = i * ax.stride + k * ax.dilation - ax.crop_begin;
          if (o >= 0 && o < ax.out) expected.emplace_back(k, o);
        }
        EXPECT_EQ(codegen::valid_taps(dx, a, i), expected) << describe(g);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, InputGradientPlanTest, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) { return to_string(info.param); });

TEST(InputGradientErrors, NamesTheBadArgument) {
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = 3;
  g.out_channels = 4;
  for (AxisGeometry& a : g.axes) a = {2, 2, 2, 1, 0, 4};
  const Problem problem = make_problem(g, true, Activation{});
  const std::vector<float> kernel(static_cast<size_t>(g.kernel_elements()));
  for (Backend b : {Backend::kReference, Backend::kGeneric, Backend::kAuto}) {
    try {
      GeneratedInputGradient(problem, kernel.data(), b, Isa::kAuto);
      ADD_FAILURE() << to_string(b) << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "backend") << e.what();
    }
  }
  // Missing kernel: named as such where the backend and ISA are there, else those.
  EXPECT_THROW(GeneratedInputGradient(problem, static_cast<const float*>(nullptr), Backend::kXbyak, Isa::kAuto),
               Error);
  WeightStore too_small(std::vector<float>(kernel.size() - 1), {});
  EXPECT_THROW(GeneratedInputGradient(problem, too_small, Backend::kXbyak, Isa::kAuto), Error);
  try {
    codegen::make_input_gradient_plan(problem, Isa::kAuto);
    ADD_FAILURE() << "an unresolved ISA was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "isa") << e.what();
  }
}

}  // namespace
}  // namespace tconv3d
