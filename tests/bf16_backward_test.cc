// bf16 backward (Layer::backward_bf16, Keras mixed_bfloat16): dx, dK and db
// of random bf16 layers against a bf16 backward reference, bitwise identity
// across thread counts, and the errors.
//
// The reference: the bf16 inputs and the bf16-rounded kernel, dz from the
// core's float32 activation_gradient_rows (the function the layer uses, so
// dz has the same bits and the test measures the products alone), db a
// double sum of dz, and dx, dK double sums of the products of dz rounded to
// bf16; dx is then rounded to bf16. z, where act' needs it, is the bf16
// forward's (tested against its own reference in bf16_test.cc).
//
// Tolerances scale with each element's reduction: float32 summing n terms
// (products of bf16 values are exact in float32) is off by at most
// n * 2^-24 * sum |term| (the classic bound). dK and db may differ from the
// exact sum by that; dx, rounded to bf16 once, must lie between the bf16
// values just below and just above the exact sum -/+ that bound.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "core/activation.hpp"
#include "core/activation_gradient.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "runtime/kernels/reference_contributions.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/layer.hpp"
#include "tconv3d/tconv3d.h"
#include "tests/backward_test_support.hpp"
#include "tests/bf16_test_support.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

using testing::bf16_options;
using testing::have_bf16;
using testing::RandomCase;
using testing::same_bits;
using testing::to_bf16;

#define REQUIRE_BF16() \
  if (!have_bf16()) GTEST_SKIP() << "this CPU lacks avx512_bf16: the bf16 backward does not run here"

const char* const kElementwise[] = {
    "linear",     "relu",        "leaky_relu", "relu6",     "elu",          "celu",           "selu",
    "softplus",   "softsign",    "squareplus", "soft_shrink", "hard_shrink", "sparse_plus",   "silu",
    "hard_silu",  "gelu",        "tanh",       "tanh_shrink", "hard_tanh",  "sigmoid",        "hard_sigmoid",
    "sparse_sigmoid", "log_sigmoid", "exponential", "mish"};

std::vector<float> to_float(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(v[i]);
  return out;
}

// The bf16 value next to `b` upwards / downwards (b finite).
uint16_t bf16_step_up(uint16_t b) {
  if (b == 0x8000) return 0x0001;  // -0 -> the smallest positive
  return (b & 0x8000) ? uint16_t(b - 1) : uint16_t(b + 1);
}
uint16_t bf16_step_down(uint16_t b) {
  if (b == 0x0000) return 0x8001;
  return (b & 0x8000) ? uint16_t(b + 1) : uint16_t(b - 1);
}
// The smallest bf16 >= v, the largest bf16 <= v.
float bf16_ceil(double v) {
  uint16_t b = float_to_bf16(float(v));
  while (double(bf16_to_float(b)) < v) b = bf16_step_up(b);
  while (double(bf16_to_float(bf16_step_down(b))) >= v) b = bf16_step_down(b);
  return bf16_to_float(b);
}
float bf16_floor(double v) { return -bf16_ceil(-v); }


// [batch][a][b] -> [batch][b][a].
template <typename T>
std::vector<T> swap_axes(const std::vector<T>& in, int64_t batch, int64_t a, int64_t b) {
  std::vector<T> out(in.size());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) out[(n * b + j) * a + i] = in[(n * a + i) * b + j];
  return out;
}

struct Data {
  std::vector<float> kernel, bias;
  std::vector<int64_t> kshape;
  std::vector<uint16_t> x, y, z, dy;  // the layer's format; z only where act' needs it
};

struct Grads {
  std::vector<uint16_t> dx;
  std::vector<float> dk, db;
};

// Reference results and, per element, the tolerance (dx: the bf16 interval it must lie in).
struct Expected {
  Grads value;
  std::vector<float> dx_low, dx_high;
  std::vector<double> dk_tol, db_tol;
};

Layer make_layer(const RandomCase& c, const Data& d, const Activation& act, int threads) {
  LayerConfig config = c.config;
  config.activation = act;
  const ConstTensor b = config.use_bias ? ConstTensor{d.bias.data(), {int64_t(d.bias.size())}} : ConstTensor{};
  return Layer::create(config, c.input_shape, ConstTensor{d.kernel.data(), d.kshape}, b,
                       bf16_options(Backend::kXbyak, threads));
}

Data make_data(const RandomCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  Data d;
  d.kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
  d.kernel = testing::random_tensor(g.kernel_elements(), rng);
  d.bias = testing::random_tensor(g.out_channels, rng);
  d.x = to_bf16(testing::random_tensor(g.input_elements(), rng));
  d.dy = to_bf16(testing::random_tensor(g.output_elements(), rng));
  const Layer layer = make_layer(c, d, c.config.activation, 1);
  d.y.assign(size_t(g.output_elements()), 0);
  layer.forward_bf16(d.x.data(), d.y.data());
  if (needs_preactivation(c.config.activation)) {
    d.z.assign(size_t(g.output_elements()), 0);
    make_layer(c, d, Activation{}, 1).forward_bf16(d.x.data(), d.z.data());
  }
  return d;
}

Expected reference(const RandomCase& c, const Data& d) {
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  const Activation& act = c.config.activation;
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t sin = g.input_elements() / (g.batch * cin), sout = g.output_elements() / (g.batch * cout);
  // Everything channels_last, float32 values of the bf16 data.
  auto cl_in = [&](const std::vector<uint16_t>& v) {
    return to_float(last ? v : swap_axes(v, g.batch, cin, sin));
  };
  auto cl_out = [&](const std::vector<uint16_t>& v) {
    return to_float(last ? v : swap_axes(v, g.batch, cout, sout));
  };
  const std::vector<float> x = cl_in(d.x), dy = cl_out(d.dy);
  const std::vector<float> y = cl_out(d.y), z = d.z.empty() ? std::vector<float>{} : cl_out(d.z);
  std::vector<float> dz(dy.size());
  activation_gradient_rows(act, z.empty() ? nullptr : z.data(), y.data(), dy.data(), dz.data(),
                           int64_t(dz.size()) / cout, cout);
  std::vector<float> kb(d.kernel), dzb(dz);
  for (float& v : kb) v = round_to_bf16(v);
  for (float& v : dzb) v = round_to_bf16(v);

  Expected e;
  std::vector<double> dx_sum(x.size()), dx_abs(x.size()), dx_n(x.size());
  std::vector<double> dk_sum(kb.size()), dk_abs(kb.size()), dk_n(kb.size());
  for_each_contribution(g, [&](const Contribution& p) {
    const float* w = kb.data() + p.tap * cout * cin;
    const float* dz_row = dzb.data() + p.output_voxel(g) * cout;
    const int64_t xi = p.input_voxel(g) * cin;
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t ci = 0; ci < cin; ++ci) {
        const double t = double(dz_row[co]) * double(w[co * cin + ci]);
        dx_sum[size_t(xi + ci)] += t;
        dx_abs[size_t(xi + ci)] += std::fabs(t);
        dx_n[size_t(xi + ci)] += 1;
        const double u = double(dz_row[co]) * double(x[size_t(xi + ci)]);
        const size_t ki = size_t(p.tap * cout * cin + co * cin + ci);
        dk_sum[ki] += u;
        dk_abs[ki] += std::fabs(u);
        dk_n[ki] += 1;
      }
  });
  const double u = std::ldexp(1.0, -24);
  std::vector<uint16_t> dx_cl(x.size());
  std::vector<float> low(x.size()), high(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    dx_cl[i] = float_to_bf16(float(dx_sum[i]));
    const double bound = dx_n[i] * u * dx_abs[i];
    low[i] = bf16_floor(dx_sum[i] - bound);
    high[i] = bf16_ceil(dx_sum[i] + bound);
  }
  e.value.dx = last ? dx_cl : swap_axes(dx_cl, g.batch, sin, cin);
  e.dx_low = last ? low : swap_axes(low, g.batch, sin, cin);
  e.dx_high = last ? high : swap_axes(high, g.batch, sin, cin);
  for (size_t i = 0; i < kb.size(); ++i) {
    e.value.dk.push_back(float(dk_sum[i]));
    e.dk_tol.push_back(dk_n[i] * u * dk_abs[i] + std::ldexp(std::fabs(dk_sum[i]), -23) + 1e-30);
  }
  if (c.config.use_bias) {
    std::vector<double> sum(static_cast<size_t>(cout)), abs(static_cast<size_t>(cout));
    for (size_t i = 0; i < dz.size(); ++i) {
      sum[i % size_t(cout)] += dz[i];
      abs[i % size_t(cout)] += std::fabs(dz[i]);
    }
    for (int64_t co = 0; co < cout; ++co) {
      e.value.db.push_back(float(sum[size_t(co)]));
      e.db_tol.push_back(1e-12 * abs[size_t(co)] + std::ldexp(std::fabs(sum[size_t(co)]), -23) + 1e-30);
    }
  }
  return e;
}

Grads run(const Layer& layer, const Data& d) {
  Grads r;
  const ConvGeometry& g = layer.geometry();
  r.dx.assign(size_t(g.input_elements()), 0x7FC1);
  r.dk.assign(size_t(g.kernel_elements()), std::nanf(""));
  if (layer.config().use_bias) r.db.assign(size_t(g.out_channels), std::nanf(""));
  layer.backward_bf16(d.x.data(), d.y.data(), d.dy.data(), r.dx.data(), r.dk.data(),
                      r.db.empty() ? nullptr : r.db.data());
  return r;
}

// The first element past its tolerance, or -1; `worst` gets the largest error / tolerance.
template <typename T, typename ToDouble>
int64_t first_bad(const std::vector<T>& actual, const std::vector<T>& expected, const std::vector<double>& tol,
                  ToDouble to_double, double* worst) {
  int64_t bad = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = to_double(actual[i]), e = to_double(expected[i]);
    const double ratio = std::fabs(a - e) / tol[i];
    if (!(ratio <= 1.0) && bad < 0) bad = int64_t(i);
    if (std::isfinite(ratio)) *worst = std::max(*worst, ratio);
  }
  return bad;
}

void expect_matches(const RandomCase& c, const Grads& got, const Expected& e, double* worst) {
  const auto f = [](float v) { return double(v); };
  for (size_t i = 0; i < got.dx.size(); ++i) {
    const float a = bf16_to_float(got.dx[i]);
    ASSERT_TRUE(a >= e.dx_low[i] && a <= e.dx_high[i])
        << c.describe() << ": dx[" << i << "] = " << a << ", reference " << bf16_to_float(e.value.dx[i])
        << ", allowed [" << e.dx_low[i] << ", " << e.dx_high[i] << "]";
  }
  int64_t bad = first_bad(got.dk, e.value.dk, e.dk_tol, f, worst);
  ASSERT_LT(bad, 0) << c.describe() << ": dk[" << bad << "] = " << got.dk[size_t(bad)] << ", reference "
                    << e.value.dk[size_t(bad)] << ", tolerance " << e.dk_tol[size_t(bad)];
  bad = first_bad(got.db, e.value.db, e.db_tol, f, worst);
  ASSERT_LT(bad, 0) << c.describe() << ": db[" << bad << "] = " << got.db[size_t(bad)] << ", reference "
                    << e.value.db[size_t(bad)];
}

TEST(Bf16Backward, RandomLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(2024);
  int channels_first = 0, batched = 0, activated = 0, odd_cin = 0, odd_cout = 0;
  double worst = 0;
  for (int i = 0; i < 80; ++i) {
    RandomCase c = testing::random_case(rng);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    channels_first += g.data_format == DataFormat::kChannelsFirst;
    batched += g.batch > 1;
    activated += c.config.activation.kind != ActivationKind::kLinear;
    odd_cin += g.in_channels % 16 != 0;
    odd_cout += g.out_channels % 16 != 0;
    const Data d = make_data(c, 300 + uint64_t(i));
    const Layer layer = make_layer(c, d, c.config.activation, 1);
    ASSERT_NO_FATAL_FAILURE(expect_matches(c, run(layer, d), reference(c, d), &worst));
    // dx runs the vdpbf16ps row kernel, dK the vdpbf16ps voxel-pair kernel.
    const std::string kernels = layer.backward_bf16_kernel_names();
    EXPECT_EQ(kernels.rfind("tconv3d_dx_bf16_", 0), 0u) << kernels;
    EXPECT_NE(kernels.find(" + tconv3d_dk_bf16_"), std::string::npos) << kernels;
    EXPECT_EQ(layer.backward_kernel_names(), kernels);  // the generic name reports what a bf16 layer runs
  }
  EXPECT_GT(channels_first, 10);
  EXPECT_GT(batched, 10);
  EXPECT_GT(activated, 10);
  EXPECT_GT(odd_cin, 10);
  EXPECT_GT(odd_cout, 10);
  RecordProperty("worst_error_over_tolerance", std::to_string(worst));
  std::printf("worst error / tolerance over the draw: %.3g\n", worst);
}

TEST(Bf16Backward, EveryElementwiseActivation) {
  REQUIRE_BF16();
  std::mt19937_64 rng(77);
  double worst = 0;
  int k = 0;
  for (const char* name : kElementwise) {
    for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
      RandomCase c;
      c.config.filters = 7;
      c.config.kernel_size = {3, 2, 3};
      c.config.strides = {2, 1, 2};
      c.config.padding = Padding::kSame;
      c.config.data_format = format;
      c.config.activation = parse_activation_name(name, Flavor::kKeras3);
      c.input_shape = format == DataFormat::kChannelsLast ? std::vector<int64_t>{2, 3, 4, 5, 5}
                                                          : std::vector<int64_t>{2, 5, 3, 4, 5};
      // z spread over the activations' interesting ranges (kinks at 0, ±1, ±3, 6).
      const Data d = make_data(c, 900 + uint64_t(k++));
      const Layer layer = make_layer(c, d, c.config.activation, 2);
      ASSERT_NO_FATAL_FAILURE(expect_matches(c, run(layer, d), reference(c, d), &worst)) << name;
    }
  }
  std::printf("worst error / tolerance: %.3g\n", worst);
}

TEST(Bf16Backward, ThreadCountsGiveIdenticalBits) {
  REQUIRE_BF16();
  std::mt19937_64 rng(31);
  for (int i = 0; i < 12; ++i) {
    RandomCase c = testing::random_case(rng);
    const Data d = make_data(c, 50 + uint64_t(i));
    const Grads one = run(make_layer(c, d, c.config.activation, 1), d);
    for (int threads : {2, 3, 7}) {
      const Grads many = run(make_layer(c, d, c.config.activation, threads), d);
      EXPECT_EQ(many.dx, one.dx) << c.describe() << " threads " << threads;
      EXPECT_TRUE(same_bits(many.dk, one.dk)) << c.describe() << " " << threads;
      EXPECT_TRUE(same_bits(many.db, one.db)) << c.describe() << " " << threads;
    }
  }
  // Larger layers, where the work really splits among threads: channels_last
  // (many blocks of the dz pass), channels_first with planes of more than
  // one block (D*H > 256 rows of W).
  for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
    RandomCase c;
    c.config.filters = 40;
    c.config.kernel_size = {3, 3, 3};
    c.config.strides = {2, 2, 2};
    c.config.padding = Padding::kSame;
    c.config.data_format = format;
    c.config.activation = parse_activation_name("gelu", Flavor::kKeras3);
    c.input_shape = format == DataFormat::kChannelsLast ? std::vector<int64_t>{2, 6, 7, 9, 36}
                                                        : std::vector<int64_t>{2, 36, 3, 10, 9};
    const Data d = make_data(c, 5);
    const Grads one = run(make_layer(c, d, c.config.activation, 1), d);
    for (int threads : {2, 3, 7}) {
      const Grads many = run(make_layer(c, d, c.config.activation, threads), d);
      EXPECT_EQ(many.dx, one.dx) << threads;
      EXPECT_TRUE(same_bits(many.dk, one.dk)) << threads;
      EXPECT_TRUE(same_bits(many.db, one.db)) << threads;
    }
    double worst = 0;
    ASSERT_NO_FATAL_FAILURE(expect_matches(c, one, reference(c, d), &worst));
  }
}

// The dK kernel reduces voxel pairs along W (vdpbf16ps): odd W extents
// (the last pair's partner is zero), taps valid for one voxel of a pair only
// (borders, strides, dilation, output_padding), channel counts off 16/32,
// a single voxel, kw-merged tiles (few filters), batch > 1, channels_first;
// each against the reference and bitwise identical over thread counts.
TEST(Bf16Backward, KernelGradientVoxelPairs) {
  REQUIRE_BF16();
  struct Shape {
    int64_t w, ci, co;
    Triple kernel, strides, dilation;
    Padding padding;
    std::optional<Triple> output_padding;
    DataFormat format;
    int64_t batch, d, h;
  };
  const DataFormat cl = DataFormat::kChannelsLast, cf = DataFormat::kChannelsFirst;
  const Shape shapes[] = {
      {5, 17, 5, {2, 2, 3}, {1, 2, 2}, {1, 1, 1}, Padding::kValid, std::nullopt, cl, 3, 2, 3},
      {7, 33, 31, {1, 3, 3}, {1, 1, 3}, {1, 1, 1}, Padding::kSame, std::nullopt, cf, 2, 3, 2},
      {1, 1, 3, {2, 1, 4}, {2, 1, 2}, {1, 1, 1}, Padding::kValid, std::nullopt, cl, 1, 2, 2},
      {9, 48, 20, {2, 2, 3}, {1, 1, 1}, {1, 2, 3}, Padding::kSame, std::nullopt, cf, 2, 2, 3},
      {6, 40, 64, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, Padding::kSame, Triple{1, 0, 1}, cl, 2, 2, 2},
      {3, 250, 2, {1, 1, 5}, {1, 1, 1}, {1, 1, 2}, Padding::kValid, std::nullopt, cl, 2, 1, 2},
      {5, 9, 1, {1, 2, 2}, {1, 1, 3}, {1, 1, 1}, Padding::kValid, std::nullopt, cf, 3, 2, 2},
      {11, 31, 33, {2, 2, 4}, {2, 2, 3}, {1, 1, 1}, Padding::kSame, std::nullopt, cl, 2, 2, 2},
  };
  int k = 0;
  for (const Shape& sh : shapes) {
    RandomCase c;
    c.config.filters = sh.co;
    c.config.kernel_size = sh.kernel;
    c.config.strides = sh.strides;
    c.config.dilation_rate = sh.dilation;
    c.config.padding = sh.padding;
    c.config.output_padding = sh.output_padding;
    c.config.data_format = sh.format;
    c.config.activation = parse_activation_name(k % 2 ? "relu" : "linear", Flavor::kKeras3);
    c.input_shape = sh.format == cl ? std::vector<int64_t>{sh.batch, sh.d, sh.h, sh.w, sh.ci}
                                    : std::vector<int64_t>{sh.batch, sh.ci, sh.d, sh.h, sh.w};
    const Data d = make_data(c, 4000 + uint64_t(k++));
    const Layer layer = make_layer(c, d, c.config.activation, 1);
    const std::string kernels = layer.backward_bf16_kernel_names();
    EXPECT_NE(kernels.find(" + tconv3d_dk_bf16_"), std::string::npos) << kernels;
    const Grads one = run(layer, d);
    double worst = 0;
    ASSERT_NO_FATAL_FAILURE(expect_matches(c, one, reference(c, d), &worst));
    for (int threads : {2, 3, 7}) {
      const Grads many = run(make_layer(c, d, c.config.activation, threads), d);
      EXPECT_TRUE(same_bits(many.dk, one.dk)) << c.describe() << " threads " << threads;
    }
  }
}

// The bf16 variant of the kernel-gradient plan: W steps are voxel pairs,
// its own kernel-cache key and name, AVX-512 only.
TEST(Bf16Backward, KernelGradientPlanVariant) {
  RandomCase c;
  c.config.filters = 5;
  c.config.kernel_size = {2, 2, 3};
  c.config.strides = {1, 1, 2};
  c.input_shape = {1, 2, 2, 7, 17};
  Problem problem;
  problem.geometry = resolve_geometry(c.config, c.input_shape);
  const codegen::KernelGradientPlan f32 = codegen::make_kernel_gradient_plan(problem, Isa::kAvx512);
  const codegen::KernelGradientPlan bf16 =
      codegen::make_kernel_gradient_plan(problem, Isa::kAvx512, DataType::kBfloat16);
  EXPECT_FALSE(f32.bf16());
  EXPECT_TRUE(bf16.bf16());
  EXPECT_EQ(f32.w_steps(), 7);
  EXPECT_EQ(bf16.w_steps(), 4);  // (0,1) (2,3) (4,5) (6,zero partner)
  EXPECT_NE(f32.cache_key(), bf16.cache_key());
  EXPECT_EQ(codegen::kernel_gradient_name(bf16).rfind("tconv3d_dk_bf16_", 0), 0u);
  EXPECT_EQ(codegen::kernel_gradient_name(f32).rfind("tconv3d_dk_f32_", 0), 0u);
  // W out = 15: a dz pair row is stride voxels longer, its voxel 0 after them.
  EXPECT_EQ(bf16.dz_row_bytes(), 4 * (15 + 2) * 5);
  EXPECT_EQ(bf16.dz_row_origin(), 4 * 2 * 5);
  EXPECT_EQ(bf16.x_row_bytes(), 4 * 4 * 17);
  for (const auto& segments : bf16.w_segments) {
    int64_t steps = 0;
    for (const auto& s : segments) steps += s.count;
    EXPECT_EQ(steps, 4);  // every pair has a valid tap here
  }
  EXPECT_THROW(codegen::make_kernel_gradient_plan(problem, Isa::kAvx2, DataType::kBfloat16), Error);
}

TEST(Bf16Backward, WideLayersSplitChannelGroups) {
  REQUIRE_BF16();
  // 192 filters -> 250 input channels (not a multiple of 16 or 32), 3x3x3:
  // the dx kernel's weights per row exceed its cache budget, so its channel
  // groups run as separate kernels; an odd filter count's last pair is half.
  for (int64_t filters : {192, 75}) {
    RandomCase c;
    c.config.filters = filters;
    c.config.kernel_size = {3, 3, 3};
    c.config.strides = {2, 2, 2};
    c.config.padding = Padding::kSame;
    c.config.activation = parse_activation_name("relu", Flavor::kKeras3);
    c.input_shape = {2, 2, 3, 5, 250};
    const Data d = make_data(c, 11);
    const Layer layer = make_layer(c, d, c.config.activation, 2);
    double worst = 0;
    ASSERT_NO_FATAL_FAILURE(expect_matches(c, run(layer, d), reference(c, d), &worst));
    if (filters == 192)
      EXPECT_NE(layer.backward_bf16_kernel_names().find("_per_group"), std::string::npos)
          << layer.backward_bf16_kernel_names();
  }
}

TEST(Bf16Backward, SkipsWhatIsNull) {
  REQUIRE_BF16();
  std::mt19937_64 rng(8);
  RandomCase c = testing::random_case(rng);
  c.config.activation = parse_activation_name("silu", Flavor::kKeras3);  // needs z
  const Data d = make_data(c, 9);
  const Layer layer = make_layer(c, d, c.config.activation, 2);
  const Grads all = run(layer, d);
  std::vector<uint16_t> dx(all.dx.size());
  layer.backward_bf16(d.x.data(), nullptr, d.dy.data(), dx.data(), nullptr, nullptr);  // silu reads z, not y
  EXPECT_EQ(dx, all.dx);
  std::vector<float> dk(all.dk.size());
  layer.backward_bf16(d.x.data(), nullptr, d.dy.data(), nullptr, dk.data(), nullptr);
  EXPECT_TRUE(same_bits(dk, all.dk));
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Bf16Backward, Errors) {
  REQUIRE_BF16();
  RandomCase c;
  c.config.filters = 4;
  c.config.kernel_size = {2, 2, 2};
  c.config.strides = {2, 2, 2};
  c.config.activation = parse_activation_name("sigmoid", Flavor::kKeras3);  // reads y
  c.input_shape = {1, 2, 2, 2, 3};
  const Data d = make_data(c, 1);
  const Layer layer = make_layer(c, d, c.config.activation, 1);
  Grads g;
  g.dx.resize(d.x.size());
  g.dk.resize(d.kernel.size());
  g.db.resize(4);
  EXPECT_NE(error_of([&] { layer.backward_bf16(d.x.data(), d.y.data(), nullptr, g.dx.data(), nullptr, nullptr); })
                .find("dy"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layer.backward_bf16(d.x.data(), nullptr, d.dy.data(), g.dx.data(), nullptr, nullptr); })
                .find("sigmoid"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layer.backward_bf16(nullptr, d.y.data(), d.dy.data(), nullptr, g.dk.data(), nullptr); })
                .find("kernel gradient needs the input"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layer.backward_bf16(d.x.data(), d.y.data(), d.dy.data(), const_cast<uint16_t*>(d.dy.data()),
                                               nullptr, nullptr); })
                .find("overlaps"),
            std::string::npos);
  // float32 backward on a bf16 layer, and backward_bf16 on a float32 one.
  std::vector<float> f(1000);
  EXPECT_NE(error_of([&] { layer.backward(f.data(), f.data(), f.data(), nullptr, nullptr, nullptr); }).find("bf16"),
            std::string::npos);
  const Layer f32 = Layer::create(c.config, c.input_shape, ConstTensor{d.kernel.data(), d.kshape},
                                  ConstTensor{d.bias.data(), {4}});
  EXPECT_NE(error_of([&] { f32.backward_bf16(d.x.data(), d.y.data(), d.dy.data(), g.dx.data(), nullptr, nullptr); })
                .find("float32 layer"),
            std::string::npos);
  // No bias: no bias gradient.
  RandomCase nb = c;
  nb.config.use_bias = false;
  const Layer no_bias = make_layer(nb, d, c.config.activation, 1);
  EXPECT_NE(error_of([&] { no_bias.backward_bf16(d.x.data(), d.y.data(), d.dy.data(), nullptr, nullptr, g.db.data()); })
                .find("no bias"),
            std::string::npos);
}

TEST(Bf16Backward, NeedsAvx512Bf16) {
  REQUIRE_BF16();
  RandomCase c;
  c.config.filters = 4;
  c.config.kernel_size = {2, 2, 2};
  c.input_shape = {1, 2, 2, 2, 3};
  const Data d = make_data(c, 2);
  // Made while the CPU shows bf16; the backward kernels are built on the first call.
  const Layer layer = make_layer(c, d, c.config.activation, 1);
  ScopedCpuFeatureMask hide(CpuFeature::kAvx512Bf16);
  std::vector<uint16_t> dx(d.x.size());
  EXPECT_NE(error_of([&] { layer.backward_bf16(d.x.data(), d.y.data(), d.dy.data(), dx.data(), nullptr, nullptr); })
                .find("avx512_bf16"),
            std::string::npos);
}

TEST(Bf16Backward, ReferenceBackendRunsAnywhere) {
  // The reference backend needs no AVX512_BF16, for forward and backward.
  RandomCase c;
  c.config.filters = 5;
  c.config.kernel_size = {3, 3, 3};
  c.config.strides = {2, 1, 2};
  c.config.padding = Padding::kSame;
  c.config.activation = parse_activation_name("tanh", Flavor::kKeras3);
  c.input_shape = {2, 3, 3, 4, 3};
  std::mt19937_64 rng(4);
  Data d;
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  d.kshape = {3, 3, 3, 5, 3};
  d.kernel = testing::random_tensor(g.kernel_elements(), rng);
  d.bias = testing::random_tensor(5, rng);
  d.x = to_bf16(testing::random_tensor(g.input_elements(), rng));
  d.dy = to_bf16(testing::random_tensor(g.output_elements(), rng));
  const Layer layer = Layer::create(c.config, c.input_shape, ConstTensor{d.kernel.data(), d.kshape},
                                    ConstTensor{d.bias.data(), {5}}, bf16_options(Backend::kReference, 1));
  d.y.assign(size_t(g.output_elements()), 0);
  layer.forward_bf16(d.x.data(), d.y.data());
  double worst = 0;
  expect_matches(c, run(layer, d), reference(c, d), &worst);
}

// The sigmoid layer the C API and CLI tests share, channels_first.
RandomCase c_api_case() {
  RandomCase c;
  c.config.filters = 6;
  c.config.kernel_size = {3, 2, 3};
  c.config.strides = {2, 1, 2};
  c.config.padding = Padding::kSame;
  c.config.data_format = DataFormat::kChannelsFirst;
  c.config.activation = parse_activation_name("sigmoid", Flavor::kKeras3);
  c.input_shape = {2, 3, 3, 4, 5};
  return c;
}
const char* const kCApiJson = R"({"filters": 6, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same",
    "data_format": "channels_first", "activation": "sigmoid"})";

TEST(Bf16Backward, CApiMatchesTheLayer) {
  REQUIRE_BF16();
  const RandomCase c = c_api_case();
  const Data d = make_data(c, 61);
  const Grads want = run(make_layer(c, d, c.config.activation, 1), d);
  tconv3d_options opts;
  tconv3d_options_init(&opts);
  opts.threads = 2;
  char error[512] = "";
  tconv3d_layer* layer = nullptr;
  ASSERT_EQ(tconv3d_layer_create_bf16_from_json(kCApiJson, c.input_shape.data(), 5, d.kernel.data(), d.kshape.data(),
                                                5, d.bias.data(), 6, &opts, &layer, error, sizeof error),
            TCONV3D_OK)
      << error;
  EXPECT_EQ(tconv3d_layer_is_bf16(layer), 1);
  std::vector<uint16_t> y(d.y.size());
  ASSERT_EQ(tconv3d_layer_forward_bf16(layer, d.x.data(), y.data(), error, sizeof error), TCONV3D_OK) << error;
  EXPECT_EQ(y, d.y);
  Grads got;
  got.dx.resize(want.dx.size());
  got.dk.resize(want.dk.size());
  got.db.resize(want.db.size());
  ASSERT_EQ(tconv3d_layer_backward_bf16(layer, d.x.data(), y.data(), d.dy.data(), got.dx.data(), got.dk.data(),
                                        got.db.data(), error, sizeof error),
            TCONV3D_OK)
      << error;
  EXPECT_EQ(got.dx, want.dx);
  EXPECT_TRUE(same_bits(got.dk, want.dk));
  EXPECT_TRUE(same_bits(got.db, want.db));
  // The float32 entry points refuse the bf16 layer, and y missing is named.
  std::vector<float> f(4096);
  EXPECT_NE(tconv3d_layer_backward(layer, f.data(), f.data(), f.data(), f.data(), nullptr, nullptr, error,
                                   sizeof error),
            TCONV3D_OK);
  EXPECT_NE(tconv3d_layer_backward_bf16(layer, d.x.data(), nullptr, d.dy.data(), got.dx.data(), nullptr, nullptr,
                                        error, sizeof error),
            TCONV3D_OK);
  EXPECT_NE(std::string(error).find("y"), std::string::npos) << error;
  tconv3d_layer_destroy(layer);
  // And the bf16 entry points a float32 layer.
  ASSERT_EQ(tconv3d_layer_create_from_json(kCApiJson, c.input_shape.data(), 5, d.kernel.data(), d.kshape.data(), 5,
                                           d.bias.data(), 6, &opts, &layer, error, sizeof error),
            TCONV3D_OK)
      << error;
  EXPECT_EQ(tconv3d_layer_is_bf16(layer), 0);
  EXPECT_NE(tconv3d_layer_backward_bf16(layer, d.x.data(), y.data(), d.dy.data(), got.dx.data(), nullptr, nullptr,
                                        error, sizeof error),
            TCONV3D_OK);
  EXPECT_NE(std::string(error).find("float32 layer"), std::string::npos) << error;
  tconv3d_layer_destroy(layer);
}

TEST(Bf16Backward, CliRoundTrip) {
  REQUIRE_BF16();
  const RandomCase c = c_api_case();
  const Data d = make_data(c, 62);
  const Grads want = run(make_layer(c, d, c.config.activation, 1), d);
  const std::filesystem::path dir = testing::fresh_temp_dir("bf16_backward_cli");
  auto file = [&](const char* name) { return (dir / name).string(); };
  std::ofstream(file("layer.json")) << kCApiJson;
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  const Shape5 out = g.output_shape();
  write_npy_bf16(file("x.npy"), c.input_shape, d.x.data());
  write_npy_bf16(file("dy.npy"), std::vector<int64_t>(out.begin(), out.end()), d.dy.data());
  write_npy(file("k.npy"), d.kshape, d.kernel.data());
  write_npy(file("b.npy"), {6}, d.bias.data());
  const std::vector<std::string> args = {"backward", "--layer", file("layer.json"), "--input", file("x.npy"),
                                         "--kernel", file("k.npy"), "--bias", file("b.npy"), "--grad-output",
                                         file("dy.npy"), "--grad-input", file("dx.npy"), "--grad-kernel",
                                         file("dk.npy"), "--grad-bias", file("db.npy"), "--threads", "3"};
  std::vector<std::string> bf16_args = args;
  bf16_args.insert(bf16_args.end(), {"--dtype", "bf16"});
  const testing::CliResult r = testing::run_cli(bf16_args, dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const NpyBf16Array dx = read_npy_bf16(file("dx.npy"));
  EXPECT_EQ(dx.shape, c.input_shape);
  EXPECT_EQ(dx.data, want.dx);
  const NpyArray dk = read_npy(file("dk.npy")), db = read_npy(file("db.npy"));
  EXPECT_EQ(dk.shape, d.kshape);
  EXPECT_TRUE(same_bits(dk.data, want.dk));
  EXPECT_TRUE(same_bits(db.data, want.db));
  // Without --dtype bf16 the 2-byte files are refused, naming the flag.
  const testing::CliResult f32 = testing::run_cli(args, dir.string());
  EXPECT_NE(f32.exit_code, 0);
  EXPECT_NE(f32.err.find("--input"), std::string::npos) << f32.err;
}

}  // namespace
}  // namespace tconv3d
