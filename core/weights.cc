#include "core/weights.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

struct Fans {
  double in = 1, out = 1;
};

Fans compute_fans(const std::vector<int64_t>& shape) {
  // keras/src/initializers/random_initializers.py compute_fans.
  if (shape.empty()) return {1, 1};
  if (shape.size() == 1) return {double(shape[0]), double(shape[0])};
  if (shape.size() == 2) return {double(shape[0]), double(shape[1])};
  double receptive = 1;
  for (size_t i = 0; i + 2 < shape.size(); ++i) receptive *= double(shape[i]);
  return {double(shape[shape.size() - 2]) * receptive, double(shape.back()) * receptive};
}

double truncated_normal(std::mt19937_64& rng, double mean, double stddev) {
  // Resample outside two standard deviations, as tf/jax truncated_normal.
  std::normal_distribution<double> normal(0.0, 1.0);
  for (;;) {
    const double z = normal(rng);
    if (std::abs(z) <= 2.0) return mean + stddev * z;
  }
}

std::vector<float> orthogonal(const std::vector<int64_t>& shape, double gain, std::mt19937_64& rng) {
  // Keras: flatten to (prod(shape[:-1]), shape[-1]), QR of a normal matrix
  // (transposed if it has more columns than rows), sign-fix by diag(R).
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const int64_t cols = shape.back();
  const bool transpose = rows < cols;
  const int64_t m = transpose ? cols : rows, n = transpose ? rows : cols;
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> a(static_cast<size_t>(m * n));
  for (auto& v : a) v = normal(rng);
  // Modified Gram-Schmidt on the n columns of the m x n matrix: Q (m x n) and diag(R).
  std::vector<double> q = a;
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += q[i * n + k] * q[i * n + j];
      for (int64_t i = 0; i < m; ++i) q[i * n + j] -= dot * q[i * n + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += q[i * n + j] * q[i * n + j];
    norm = std::sqrt(norm);
    // R's diagonal is +norm with Gram-Schmidt, so the sign fix is already applied.
    for (int64_t i = 0; i < m; ++i) q[i * n + j] = norm > 0 ? q[i * n + j] / norm : 0.0;
  }
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = static_cast<float>(gain * (transpose ? q[c * n + r] : q[r * n + c]));
  return out;
}

}  // namespace

std::vector<float> initialize(const Initializer& init, const std::vector<int64_t>& shape, uint64_t seed) {
  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  std::mt19937_64 rng(init.seed ? static_cast<uint64_t>(*init.seed) : seed);
  std::vector<float> out(static_cast<size_t>(count));
  const std::string& name = init.class_name;
  if (name == "Zeros") return out;
  if (name == "Ones" || name == "Constant") {
    std::fill(out.begin(), out.end(), name == "Ones" ? 1.0f : static_cast<float>(init.value));
    return out;
  }
  if (name == "RandomNormal") {
    std::normal_distribution<double> normal(init.mean, init.stddev);
    for (auto& v : out) v = static_cast<float>(normal(rng));
    return out;
  }
  if (name == "RandomUniform") {
    std::uniform_real_distribution<double> uniform(init.minval, init.maxval);
    for (auto& v : out) v = static_cast<float>(uniform(rng));
    return out;
  }
  if (name == "TruncatedNormal") {
    for (auto& v : out) v = static_cast<float>(truncated_normal(rng, init.mean, init.stddev));
    return out;
  }
  if (name == "Orthogonal") {
    if (shape.size() < 2) throw Error("initializer", "Orthogonal needs a tensor of rank >= 2");
    return orthogonal(shape, init.gain, rng);
  }
  // VarianceScaling and its named presets.
  double scale = init.scale;
  std::string mode = init.mode, distribution = init.distribution;
  if (name == "GlorotUniform") { scale = 1; mode = "fan_avg"; distribution = "uniform"; }
  else if (name == "GlorotNormal") { scale = 1; mode = "fan_avg"; distribution = "truncated_normal"; }
  else if (name == "HeUniform") { scale = 2; mode = "fan_in"; distribution = "uniform"; }
  else if (name == "HeNormal") { scale = 2; mode = "fan_in"; distribution = "truncated_normal"; }
  else if (name == "LecunUniform") { scale = 1; mode = "fan_in"; distribution = "uniform"; }
  else if (name == "LecunNormal") { scale = 1; mode = "fan_in"; distribution = "truncated_normal"; }
  else if (name != "VarianceScaling") throw Error("initializer", "unknown initializer '" + name + "'");
  const Fans fans = compute_fans(shape);
  const double n = mode == "fan_in" ? fans.in : mode == "fan_out" ? fans.out : (fans.in + fans.out) / 2.0;
  scale /= std::max(1.0, n);
  if (distribution == "uniform") {
    const double limit = std::sqrt(3.0 * scale);
    std::uniform_real_distribution<double> uniform(-limit, limit);
    for (auto& v : out) v = static_cast<float>(uniform(rng));
  } else if (distribution == "untruncated_normal") {
    std::normal_distribution<double> normal(0.0, std::sqrt(scale));
    for (auto& v : out) v = static_cast<float>(normal(rng));
  } else {
    // Keras: stddev of a normal truncated at 2 sigma, corrected to keep the variance.
    const double stddev = std::sqrt(scale) / 0.87962566103423978;
    for (auto& v : out) v = static_cast<float>(truncated_normal(rng, 0.0, stddev));
  }
  return out;
}

double regularization_loss(const Regularizer& reg, const float* values, int64_t count) {
  double l1 = 0, l2 = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double v = values[i];
    l1 += std::abs(v);
    l2 += v * v;
  }
  return reg.l1 * l1 + reg.l2 * l2;
}

void apply_constraint(const Constraint& constraint, float* values, const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  if (constraint.class_name == "NonNeg") {
    for (int64_t i = 0; i < count; ++i) values[i] = values[i] < 0 ? 0.0f : values[i];
    return;
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  for (int64_t a : constraint.axis) {
    const int64_t axis = a < 0 ? a + rank : a;
    if (axis < 0 || axis >= rank) {
      throw Error(constraint.class_name + ".axis",
                  "axis " + std::to_string(a) + " is out of range for a tensor of rank " + std::to_string(rank));
    }
    reduced[static_cast<size_t>(axis)] = true;
  }
  // Map every element to its norm group (the index over the kept axes).
  std::vector<int64_t> strides(static_cast<size_t>(rank), 1);
  for (int64_t i = rank - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  std::vector<int64_t> group_of(static_cast<size_t>(count));
  int64_t groups = 1;
  std::vector<int64_t> group_strides(static_cast<size_t>(rank), 0);
  for (int64_t i = rank - 1; i >= 0; --i) {
    if (!reduced[i]) {
      group_strides[i] = groups;
      groups *= shape[i];
    }
  }
  for (int64_t e = 0; e < count; ++e) {
    int64_t g = 0;
    for (int64_t i = 0; i < rank; ++i) g += ((e / strides[i]) % shape[i]) * group_strides[i];
    group_of[e] = g;
  }
  std::vector<double> sum_sq(static_cast<size_t>(groups), 0.0);
  for (int64_t e = 0; e < count; ++e) sum_sq[group_of[e]] += double(values[e]) * double(values[e]);
  constexpr double kEpsilon = 1e-7;  // keras.backend.epsilon()
  for (int64_t e = 0; e < count; ++e) {
    // Keras computes these in float32; doing it in double differs by rounding only.
    const double norm = std::sqrt(sum_sq[group_of[e]]);
    double factor = 1.0;
    if (constraint.class_name == "MaxNorm") {
      const double desired = std::clamp(norm, 0.0, constraint.max_value);
      factor = desired / (kEpsilon + norm);
    } else if (constraint.class_name == "MinMaxNorm") {
      const double desired = constraint.rate * std::clamp(norm, constraint.min_value, constraint.max_value) +
                             (1.0 - constraint.rate) * norm;
      factor = desired / (kEpsilon + norm);
    } else if (constraint.class_name == "UnitNorm") {
      factor = 1.0 / (kEpsilon + norm);
    } else {
      throw Error("constraint", "unknown constraint '" + constraint.class_name + "'");
    }
    values[e] = static_cast<float>(double(values[e]) * factor);
  }
}

}  // namespace tconv3d
