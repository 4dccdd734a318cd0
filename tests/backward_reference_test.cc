// The backward pass's semantics: the activation derivatives against jax.grad
// of Keras's activations (tests/data/backward/activation_grads.json, kinks
// included) and against finite differences, and the reference backward
// (Layer::backward on Backend::kReference) against central finite
// differences of a double-precision forward, for every activation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "core/activation.hpp"
#include "core/activation_gradient.hpp"
#include "core/tensor_index.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

Activation activation_named(const std::string& name, const nlohmann::json& params = nlohmann::json::object()) {
  Activation act = name == "gelu_tanh" ? parse_activation_name("gelu", Flavor::kKeras3)
                                       : parse_activation_name(name, Flavor::kKeras3);
  if (name == "gelu_tanh") act.kind = ActivationKind::kGeluTanh;
  if (params.contains("alpha")) act.alpha = params["alpha"].get<double>();
  if (params.contains("max_value")) act.max_value = params["max_value"].get<double>();
  if (params.contains("threshold")) act.threshold = params["threshold"].get<double>();
  return act;
}

TEST(ActivationGradient, MatchesJaxGradOfKerasAtKinksAndRandomPoints) {
  std::ifstream in(std::string(TCONV3D_TEST_DATA_DIR) + "/backward/activation_grads.json");
  ASSERT_TRUE(in) << "missing fixture; run scripts/make_backward_fixtures.py";
  const nlohmann::json table = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& entry : table) {
    const Activation act = activation_named(entry["name"], entry["params"]);
    const auto xs = entry["x"].get<std::vector<double>>();
    const auto grads = entry["grad"].get<std::vector<double>>();
    for (size_t i = 0; i < xs.size(); ++i) {
      const double x = xs[i], want = grads[i];
      SCOPED_TRACE(entry["name"].get<std::string>() + " " + entry["params"].dump() + " at " + std::to_string(x));
      // The fixture is float32 (as Keras computes); kinks give exact values.
      const double tol = 2e-6 * std::max(1.0, std::abs(want));
      EXPECT_NEAR(activation_derivative<double>(act, x), want, tol);
      EXPECT_NEAR(activation_derivative<float>(act, float(x)), want, 2.5 * tol);
      if (!needs_preactivation(act)) {
        const double y = apply_elementwise<double>(act, x);
        EXPECT_NEAR(activation_derivative_from_output<double>(act, y), want, tol);
        const float yf = apply_elementwise<float>(act, float(x));
        // From a float output: softsign's 1 - |y| loses bits at large |x|.
        EXPECT_NEAR(activation_derivative_from_output<float>(act, yf), want, 2e-5 * std::max(1.0, std::abs(want)));
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000);
}

// Every activation the backward pass knows, with parameters that reach every branch.
std::vector<Activation> all_activations() {
  std::vector<Activation> acts;
  for (const char* name :
       {"linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign", "squareplus",
        "soft_shrink", "hard_shrink", "sparse_plus", "silu", "hard_silu", "gelu", "gelu_tanh", "tanh",
        "tanh_shrink", "hard_tanh", "sigmoid", "hard_sigmoid", "sparse_sigmoid", "log_sigmoid", "exponential",
        "mish", "softmax", "log_softmax", "glu", "sparsemax"})
    acts.push_back(activation_named(name));
  acts.push_back(parse_activation_name("hard_sigmoid", Flavor::kTfKeras2));
  for (const char* params : {R"({"alpha": 0.1})", R"({"max_value": 0.4})", R"({"max_value": 6.0})",
                             R"({"threshold": 0.3})", R"({"alpha": 0.2, "threshold": 0.2, "max_value": 0.5})"})
    acts.push_back(activation_named("relu", nlohmann::json::parse(params)));
  acts.push_back(activation_named("leaky_relu", nlohmann::json::parse(R"({"alpha": -0.3})")));
  acts.push_back(activation_named("elu", nlohmann::json::parse(R"({"alpha": 0.5})")));
  acts.push_back(activation_named("soft_shrink", nlohmann::json::parse(R"({"alpha": 0.2})")));
  return acts;
}

TEST(ActivationGradient, FromOutputAgreesWithFromPreactivation) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> value(-6.0, 6.0);
  for (const Activation& act : all_activations()) {
    if (!act.is_elementwise() || needs_preactivation(act)) continue;
    for (int i = 0; i < 2000; ++i) {
      const double x = value(rng);
      EXPECT_NEAR(activation_derivative_from_output(act, apply_elementwise(act, x)), activation_derivative(act, x),
                  1e-9)
          << act.name << " at " << x;
    }
  }
}

TEST(ActivationGradient, DerivativeMatchesFiniteDifferencesAwayFromKinks) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> value(-5.0, 5.0);
  const double h = 1e-6;
  for (const Activation& act : all_activations()) {
    if (!act.is_elementwise()) continue;
    for (int i = 0; i < 500; ++i) {
      const double x = value(rng);
      const double fd = (apply_elementwise(act, x + h) - apply_elementwise(act, x - h)) / (2 * h);
      const double d = activation_derivative(act, x);
      // A kink inside [x - h, x + h] gives a difference between the two sides' slopes: skip those.
      const double left = activation_derivative(act, x - 2 * h), right = activation_derivative(act, x + 2 * h);
      if (std::abs(left - right) > 1e-3 * std::max(1.0, std::abs(d))) continue;
      EXPECT_NEAR(d, fd, 1e-5 * std::max(1.0, std::abs(fd))) << act.name << " at " << x;
    }
  }
}

// ---------------------------------------------------------------------------
// The whole layer: a double-precision forward for finite differences.

struct SmallCase {
  LayerConfig config;
  std::vector<int64_t> input_shape;
};

SmallCase small_case(std::mt19937_64& rng, const Activation& act) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    SmallCase c;
    LayerConfig& k = c.config;
    k.activation = act;
    k.filters = act.kind == ActivationKind::kGlu ? 2 * pick(1, 2) : pick(1, 4);
    const bool dilated = pick(0, 3) == 0;
    for (int a = 0; a < 3; ++a) {
      k.kernel_size[a] = pick(1, 3);
      k.strides[a] = dilated ? 1 : pick(1, 3);
      k.dilation_rate[a] = dilated ? pick(1, 2) : 1;
    }
    k.padding = pick(0, 1) ? Padding::kSame : Padding::kValid;
    if (pick(0, 2) == 0) {
      Triple op;
      for (int a = 0; a < 3; ++a) op[a] = pick(0, k.strides[a] - 1);
      k.output_padding = op;
    }
    k.data_format = pick(0, 1) ? DataFormat::kChannelsFirst : DataFormat::kChannelsLast;
    k.use_bias = pick(0, 3) != 0;
    const int64_t batch = pick(1, 2), channels = pick(1, 3);
    const int64_t d = pick(1, 3), h = pick(1, 3), w = pick(1, 3);
    c.input_shape = k.data_format == DataFormat::kChannelsLast ? std::vector<int64_t>{batch, d, h, w, channels}
                                                                : std::vector<int64_t>{batch, channels, d, h, w};
    if (act.kind == ActivationKind::kHardSigmoidTfKeras2) {
      k.flavor = Flavor::kTfKeras2;  // its only home
      k.dilation_rate = {1, 1, 1};
    }
    try {
      validate(k);
      const ConvGeometry g = resolve_geometry(k, c.input_shape);
      if (act.kind == ActivationKind::kGlu && g.output_shape()[4] % 2) continue;
      if (g.output_elements() > 600) continue;
    } catch (const std::exception&) {
      continue;
    }
    return c;
  }
}

// Axis activations over the last axis, in double.
void activate_rows(const Activation& act, const std::vector<double>& z, std::vector<double>& y, int64_t length) {
  const int64_t rows = int64_t(z.size()) / length;
  const int64_t out_length = act.kind == ActivationKind::kGlu ? length / 2 : length;
  y.assign(size_t(rows * out_length), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double* zr = z.data() + r * length;
    double* yr = y.data() + r * out_length;
    switch (act.kind) {
      case ActivationKind::kSoftmax:
      case ActivationKind::kLogSoftmax: {
        double m = zr[0], s = 0.0;
        for (int64_t i = 1; i < length; ++i) m = std::max(m, zr[i]);
        for (int64_t i = 0; i < length; ++i) s += std::exp(zr[i] - m);
        for (int64_t i = 0; i < length; ++i)
          yr[i] = act.kind == ActivationKind::kSoftmax ? std::exp(zr[i] - m) / s : zr[i] - m - std::log(s);
        break;
      }
      case ActivationKind::kGlu:
        for (int64_t i = 0; i < out_length; ++i) yr[i] = zr[i] / (1.0 + std::exp(-zr[i + out_length]));
        break;
      case ActivationKind::kSparsemax: {
        std::vector<double> sorted(zr, zr + length);
        std::sort(sorted.rbegin(), sorted.rend());
        double cumulative = 0.0, tau = 0.0;
        for (int64_t k = 1; k <= length; ++k) {
          cumulative += sorted[k - 1];
          if (1.0 + double(k) * sorted[k - 1] > cumulative) tau = (cumulative - 1.0) / double(k);
        }
        for (int64_t i = 0; i < length; ++i) yr[i] = std::max(zr[i] - tau, 0.0);
        break;
      }
      default:
        for (int64_t i = 0; i < length; ++i) yr[i] = apply_elementwise(act, zr[i]);
    }
  }
}

// sum(dy * act(conv3d_transpose(x, K) + b)) in double.
double loss(const ConvGeometry& g, const Activation& act, const std::vector<double>& x, const std::vector<double>& k,
            const std::vector<double>& b, const std::vector<float>& dy) {
  const TensorIndex in(g.input_shape(), g.data_format), out(g.output_shape(), g.data_format);
  const auto& [ad, ah, aw] = g.axes;
  std::vector<double> z(size_t(g.output_elements()), 0.0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < ad.in; ++id)
      for (int64_t ih = 0; ih < ah.in; ++ih)
        for (int64_t iw = 0; iw < aw.in; ++iw)
          for (int64_t a = 0; a < ad.kernel; ++a)
            for (int64_t bb = 0; bb < ah.kernel; ++bb)
              for (int64_t c = 0; c < aw.kernel; ++c) {
                const int64_t od = id * ad.stride + a * ad.dilation - ad.crop_begin;
                const int64_t oh = ih * ah.stride + bb * ah.dilation - ah.crop_begin;
                const int64_t ow = iw * aw.stride + c * aw.dilation - aw.crop_begin;
                if (od < 0 || od >= ad.out || oh < 0 || oh >= ah.out || ow < 0 || ow >= aw.out) continue;
                for (int64_t f = 0; f < g.out_channels; ++f)
                  for (int64_t ci = 0; ci < g.in_channels; ++ci)
                    z[out(n, od, oh, ow, f)] +=
                        x[in(n, id, ih, iw, ci)] *
                        k[(((a * ah.kernel + bb) * aw.kernel + c) * g.out_channels + f) * g.in_channels + ci];
              }
  if (!b.empty())
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t od = 0; od < ad.out; ++od)
        for (int64_t oh = 0; oh < ah.out; ++oh)
          for (int64_t ow = 0; ow < aw.out; ++ow)
            for (int64_t f = 0; f < g.out_channels; ++f) z[out(n, od, oh, ow, f)] += b[f];
  std::vector<double> y;
  activate_rows(act, z, y, g.output_shape()[4]);
  double sum = 0.0;
  for (size_t i = 0; i < y.size(); ++i) sum += double(dy[i]) * y[i];
  return sum;
}

// Central differences of `loss` for up to `samples` elements of one of the
// arrays (chosen by `which`), against `analytic`.
void check_finite_differences(const std::string& what, std::vector<double>& values, const std::vector<float>& analytic,
                              const std::function<double()>& f, std::mt19937_64& rng, int samples) {
  const double h = 1e-5;
  double scale = 1.0;
  for (float v : analytic) scale = std::max(scale, double(std::abs(v)));
  std::vector<size_t> picks;
  if (int64_t(values.size()) <= samples) {
    for (size_t i = 0; i < values.size(); ++i) picks.push_back(i);
  } else {
    for (int s = 0; s < samples; ++s) picks.push_back(std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng));
  }
  for (size_t i : picks) {
    const double v = values[i];
    values[i] = v + h;
    const double up = f();
    values[i] = v - h;
    const double down = f();
    values[i] = v;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], fd, 2e-4 * scale) << what << "[" << i << "]";
  }
}

TEST(ReferenceBackward, MatchesFiniteDifferencesForEveryActivation) {
  std::mt19937_64 rng(2024);
  int cases = 0;
  for (const Activation& act : all_activations()) {
    for (int rep = 0; rep < 4; ++rep) {
      const SmallCase c = small_case(rng, act);
      LayerOptions options;
      options.backend = Backend::kReference;
      options.threads = 1;
      const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
      const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                           g.in_channels};
      const std::vector<float> x = testing::random_tensor(g.input_elements(), rng);
      const std::vector<float> k = testing::random_tensor(g.kernel_elements(), rng, -0.7f, 0.7f);
      const std::vector<float> b =
          c.config.use_bias ? testing::random_tensor(g.out_channels, rng, -0.5f, 0.5f) : std::vector<float>{};
      const Layer layer = Layer::create(c.config, c.input_shape, ConstTensor{k.data(), kshape},
                                        c.config.use_bias ? ConstTensor{b.data(), {g.out_channels}} : ConstTensor{},
                                        options);
      const testing::RandomCase described{c.config, c.input_shape};
      SCOPED_TRACE(act.name + " alpha=" + std::to_string(act.alpha) + " " + described.describe());
      std::vector<float> y(size_t(layer.output_elements()));
      layer.forward(x.data(), y.data());
      const std::vector<float> dy = testing::random_tensor(layer.output_elements(), rng);
      std::vector<float> dx(x.size()), dk(k.size()), db(b.size());
      layer.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), c.config.use_bias ? db.data() : nullptr);

      std::vector<double> xd(x.begin(), x.end()), kd(k.begin(), k.end()), bd(b.begin(), b.end());
      const auto f = [&] { return loss(g, act, xd, kd, bd, dy); };
      check_finite_differences("dx", xd, dx, f, rng, 12);
      check_finite_differences("dk", kd, dk, f, rng, 12);
      if (c.config.use_bias) check_finite_differences("db", bd, db, f, rng, 8);
      ++cases;
    }
  }
  EXPECT_GT(cases, 100);
}

}  // namespace
}  // namespace tconv3d
