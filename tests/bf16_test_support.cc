#include "tests/bf16_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"

namespace tconv3d::testing {

RandomCase channels_last(RandomCase c) {
  if (c.config.data_format == DataFormat::kChannelsFirst) {
    const auto& s = c.input_shape;
    c.input_shape = {s[0], s[2], s[3], s[4], s[1]};
    c.config.data_format = DataFormat::kChannelsLast;
  }
  return c;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = float_to_bf16(values[i]);
  return out;
}

std::vector<uint16_t> random_bf16(int64_t count, std::mt19937_64& rng) { return to_bf16(random_tensor(count, rng)); }

LayerOptions bf16_options(Backend backend, int threads) {
  LayerOptions o;
  o.backend = backend;
  o.dtype = DataType::kBfloat16;
  o.threads = threads;
  return o;
}

Bf16Outputs run_bf16_pair(const RandomCase& c, uint64_t seed, Backend tested, Backend expected, int threads,
                          const Bf16Edit& edit) {
  std::mt19937_64 rng(seed);
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                       g.in_channels};
  std::vector<float> kernel = random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = random_tensor(g.out_channels, rng);
  std::vector<uint16_t> input = random_bf16(g.input_elements(), rng);
  if (edit) edit(input, kernel, g);
  const ConstTensor k{kernel.data(), kshape};
  const ConstTensor b = c.config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{};
  const Layer expected_layer = Layer::create(c.config, c.input_shape, k, b, bf16_options(expected));
  const Layer tested_layer = Layer::create(c.config, c.input_shape, k, b, bf16_options(tested, threads));
  Bf16Outputs r;
  r.expected.assign(static_cast<size_t>(expected_layer.output_elements()), 0);
  r.actual.assign(static_cast<size_t>(tested_layer.output_elements()), 0x7FC1);
  expected_layer.forward_bf16(input.data(), r.expected.data());
  tested_layer.forward_bf16(input.data(), r.actual.data());
  r.kernel = tested_layer.kernel_name();
  return r;
}

int64_t first_bf16_mismatch(const Bf16Outputs& r, double* worst) {
  return first_bf16_mismatch(r.expected, r.actual, worst);
}

int64_t first_bf16_mismatch(const std::vector<uint16_t>& expected, const std::vector<uint16_t>& actual,
                            double* worst) {
  if (worst) *worst = 0;
  if (expected.size() != actual.size()) return 0;
  double scale = 1.0;
  for (uint16_t e : expected)
    if (std::isfinite(bf16_to_float(e))) scale = std::max(scale, std::fabs(double(bf16_to_float(e))));
  double max_excess = 0;
  int64_t bad = -1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = bf16_to_float(expected[i]), a = bf16_to_float(actual[i]);
    if (std::isnan(e) || std::isnan(a)) {
      if (std::isnan(e) != std::isnan(a) && bad < 0) bad = int64_t(i);
      continue;
    }
    if (std::isinf(e) || std::isinf(a)) {
      if (e != a && bad < 0) bad = int64_t(i);
      continue;
    }
    const double tolerance = std::ldexp(std::max(std::fabs(e), std::fabs(a)), -7) + 2e-4 * scale;
    const double excess = std::fabs(a - e) / tolerance;
    max_excess = std::max(max_excess, excess);
    if (excess > 1.0 && bad < 0) bad = int64_t(i);
  }
  if (worst) *worst = max_excess;
  return bad;
}

bool have_bf16() { return detected_cpu_features().avx512_bf16; }

void expect_random_layers_match(Backend tested, uint64_t seed, int max_threads, const std::string& kernel_suffix,
                                double* worst) {
  std::mt19937_64 rng(seed);
  int odd_cin = 0, batched = 0, activated = 0;
  *worst = 0;
  for (int i = 0; i < 100; ++i) {
    const RandomCase c = channels_last(random_case(rng));
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    odd_cin += g.in_channels % 2;
    batched += g.batch > 1;
    activated += c.config.activation.kind != ActivationKind::kLinear;
    const Bf16Outputs r = run_bf16_pair(c, 100 + i, tested, Backend::kReference, 1 + i % max_threads);
    double case_worst = 0;
    const int64_t bad = first_bf16_mismatch(r, &case_worst);
    *worst = std::max(*worst, case_worst);
    ASSERT_LT(bad, 0) << c.describe() << " kernel " << r.kernel << ": element " << bad << " got "
                      << bf16_to_float(r.actual[size_t(bad)]) << ", reference "
                      << bf16_to_float(r.expected[size_t(bad)]);
    EXPECT_EQ(r.kernel.rfind("tconv3d_bf16_", 0), 0u) << r.kernel;
    EXPECT_TRUE(r.kernel.size() >= kernel_suffix.size() &&
                r.kernel.compare(r.kernel.size() - kernel_suffix.size(), kernel_suffix.size(), kernel_suffix) == 0)
        << r.kernel << " does not end in " << kernel_suffix;
  }
  // The draw covers what the kernel must get right.
  EXPECT_GT(odd_cin, 10);
  EXPECT_GT(batched, 10);
  EXPECT_GT(activated, 10);
}

void expect_per_group_kernels_and_threads_agree(Backend tested) {
  const RandomCase c{config_of(192, 3, 2), {2, 3, 3, 5, 256}};
  const Bf16Outputs one = run_bf16_pair(c, 7, tested, Backend::kReference);
  EXPECT_LT(first_bf16_mismatch(one), 0);
  EXPECT_NE(one.kernel.find("_per_group"), std::string::npos) << one.kernel;
  const Bf16Outputs two = run_bf16_pair(c, 7, tested, Backend::kReference, 2);
  EXPECT_EQ(one.actual, two.actual) << "thread count changed a result";
}

void expect_odd_cin_never_reads_past_a_voxel(Backend tested) {
  for (int64_t cin : {1, 3, 5, 17}) {
    RandomCase c{config_of(20, 2, 2, Padding::kValid), {2, 2, 3, 7, cin}};
    c.config.activation = Activation{};
    const Bf16Outputs r = run_bf16_pair(c, 3, tested, Backend::kReference, 1,
                                        [](std::vector<uint16_t>& in, std::vector<float>& k, const ConvGeometry& g) {
                                          for (float& w : k) w = 0.25f + std::fabs(w);
                                          for (size_t i = 0; i < in.size(); i += size_t(g.in_channels))
                                            in[i] = float_to_bf16(INFINITY);
                                        });
    for (size_t i = 0; i < r.actual.size(); ++i) {
      ASSERT_EQ(bf16_to_float(r.actual[i]), INFINITY) << "cin " << cin << " element " << i;
      ASSERT_EQ(r.expected[i], r.actual[i]);
    }
  }
}

void expect_nan_and_inf_propagate(Backend tested, uint64_t seed, std::vector<std::string>* no_nan_reached) {
  no_nan_reached->clear();
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 10; ++i) {
    RandomCase c = channels_last(random_case(rng));
    c.config.activation = Activation{};  // linear: NaN/Inf reach the output unchanged
    const Bf16Outputs r = run_bf16_pair(c, 40 + i, tested, Backend::kReference, 1,
                                        [&](std::vector<uint16_t>& in, std::vector<float>&, const ConvGeometry&) {
                                          if (in.empty()) return;
                                          in[rng() % in.size()] = float_to_bf16(INFINITY);
                                          in[rng() % in.size()] = float_to_bf16(-INFINITY);
                                          in[rng() % in.size()] = float_to_bf16(NAN);  // last: never overwritten
                                        });
    int64_t nans = 0;
    for (uint16_t e : r.expected) nans += std::isnan(bf16_to_float(e));
    ASSERT_LT(first_bf16_mismatch(r), 0) << c.describe();
    if (nans == 0 && !r.expected.empty()) no_nan_reached->push_back(c.describe());
  }
}

}  // namespace tconv3d::testing
