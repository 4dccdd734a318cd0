// Initializers (seeded, reproducible, Keras's statistics and fan rules for the
// 5-D transposed kernel, compared with Keras's own draws in initializers.json),
// regularizer sums, and constraint semantics. Constraint outputs against
// Keras's are in keras_golden_test.cc (KerasConstraints).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config_json.hpp"
#include "core/weights.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;

json initializer_fixture() {
  std::ifstream in(std::string(TCONV3D_TEST_DATA_DIR) + "/keras/initializers.json");
  std::ostringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

Initializer named(const std::string& name) { return initializer_from_json(json(name), "kernel_initializer"); }

struct Stats {
  double mean = 0, std = 0, min = 0, max = 0;
};

Stats stats_of(const std::vector<float>& v) {
  Stats s;
  double sum = 0, sum_sq = 0;
  s.min = s.max = v.at(0);
  for (float x : v) {
    sum += x;
    s.min = std::min<double>(s.min, x);
    s.max = std::max<double>(s.max, x);
  }
  s.mean = sum / double(v.size());
  for (float x : v) sum_sq += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(sum_sq / double(v.size()));
  return s;
}

const std::vector<int64_t> kShape = {3, 3, 3, 16, 8};  // (kd, kh, kw, filters, in_channels)
constexpr double kReceptive = 27, kFanIn = 16 * kReceptive, kFanOut = 8 * kReceptive;
constexpr double kTruncatedStdCorrection = 0.87962566103423978;  // std of N(0,1) truncated to [-2, 2]

TEST(Initializers, SeededAndReproducible) {
  for (const char* name : {"glorot_uniform", "glorot_normal", "he_normal", "lecun_uniform", "random_normal",
                           "random_uniform", "truncated_normal", "orthogonal"}) {
    SCOPED_TRACE(name);
    const Initializer init = named(name);
    const std::vector<float> a = initialize(init, kShape, 7), b = initialize(init, kShape, 7),
                             c = initialize(init, kShape, 8);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    // A seed in the config wins over the caller's seed.
    Initializer seeded = init;
    seeded.seed = 99;
    EXPECT_EQ(initialize(seeded, kShape, 1), initialize(seeded, kShape, 2));
    EXPECT_NE(initialize(seeded, kShape, 1), a);
  }
}

TEST(Initializers, FansOfTheTransposedKernelAreKeras) {
  const json fixture = initializer_fixture();
  ASSERT_EQ(fixture["shape"].get<std::vector<int64_t>>(), kShape);
  for (const char* flavor : {"keras3", "tf_keras2"}) {
    // Keras does not special-case the transposed kernel: fan_in counts the filters (shape[-2]).
    EXPECT_DOUBLE_EQ(fixture["fans"][flavor][0].get<double>(), kFanIn) << flavor;
    EXPECT_DOUBLE_EQ(fixture["fans"][flavor][1].get<double>(), kFanOut) << flavor;
  }
}

// Keras's variance-scaling rule: (scale, fan, distribution) per named initializer.
struct Expected {
  const char* name;
  double variance;  // of the distribution before truncation
  bool uniform, truncated;
};

TEST(Initializers, StatisticsMatchKerasFormulaAndKerasDraws) {
  const json fixture = initializer_fixture();
  const Expected cases[] = {
      {"glorot_uniform", 2.0 / (kFanIn + kFanOut), true, false},
      {"glorot_normal", 2.0 / (kFanIn + kFanOut), false, true},
      {"he_uniform", 2.0 / kFanIn, true, false},
      {"he_normal", 2.0 / kFanIn, false, true},
      {"lecun_uniform", 1.0 / kFanIn, true, false},
      {"lecun_normal", 1.0 / kFanIn, false, true},
  };
  for (const Expected& e : cases) {
    SCOPED_TRACE(e.name);
    const Stats ours = stats_of(initialize(named(e.name), kShape, 11));
    const double std = std::sqrt(e.variance);
    // 3456 samples: the sample std is within ~1.2% (1 sigma) of the truth; allow 5%.
    EXPECT_NEAR(ours.std, std, 0.05 * std);
    EXPECT_NEAR(ours.mean, 0.0, 4 * std / std::sqrt(3456.0));
    const double bound = e.uniform ? std::sqrt(3.0) * std : 2.0 * std / kTruncatedStdCorrection;
    EXPECT_LE(std::max(-ours.min, ours.max), bound * (1 + 1e-6));
    EXPECT_GE(std::max(-ours.min, ours.max), 0.9 * bound) << "the draws should reach near the bound";
    for (const char* flavor : {"keras3", "tf_keras2"}) {
      const json& keras = fixture["stats"][flavor][e.name];
      EXPECT_NEAR(keras["std"].get<double>(), std, 0.05 * std) << flavor << ": our formula vs Keras's draw";
      EXPECT_LE(std::max(-keras["min"].get<double>(), keras["max"].get<double>()), bound * (1 + 1e-6)) << flavor;
      EXPECT_NEAR(ours.std, keras["std"].get<double>(), 0.07 * std) << flavor;
    }
  }
  // The fan rule matters: he_uniform with fan_in = in_channels*receptive would reach sqrt(6/216).
  const Stats he = stats_of(initialize(named("he_uniform"), kShape, 3));
  EXPECT_LT(he.max, std::sqrt(6.0 / kFanIn) * 1.000001);
  EXPECT_LT(he.max, std::sqrt(6.0 / kFanOut) * 0.8);
}

TEST(Initializers, PlainDistributions) {
  const json fixture = initializer_fixture();
  const Stats normal = stats_of(initialize(named("random_normal"), kShape, 5));
  EXPECT_NEAR(normal.std, 0.05, 0.0025);
  const Stats uniform = stats_of(initialize(named("random_uniform"), kShape, 5));
  EXPECT_GE(uniform.min, -0.05);
  EXPECT_LE(uniform.max, 0.05);
  EXPECT_NEAR(uniform.std, 0.1 / std::sqrt(12.0), 0.002);
  const Stats truncated = stats_of(initialize(named("truncated_normal"), kShape, 5));
  EXPECT_GE(truncated.min, -0.1);
  EXPECT_LE(truncated.max, 0.1);
  EXPECT_NEAR(truncated.std, 0.05 * kTruncatedStdCorrection, 0.0025);
  for (const char* flavor : {"keras3", "tf_keras2"}) {
    EXPECT_NEAR(fixture["stats"][flavor]["truncated_normal"]["std"].get<double>(), 0.05 * kTruncatedStdCorrection,
                0.0025);
    EXPECT_NEAR(fixture["stats"][flavor]["random_uniform"]["std"].get<double>(), uniform.std, 0.002);
  }
  // Explicit parameters.
  const Initializer shifted = initializer_from_json(
      json::parse(R"({"class_name": "RandomNormal", "config": {"mean": 3.0, "stddev": 0.5, "seed": 4}})"), "k");
  const Stats s = stats_of(initialize(shifted, kShape, 0));
  EXPECT_NEAR(s.mean, 3.0, 0.05);
  EXPECT_NEAR(s.std, 0.5, 0.025);
  const Initializer constant =
      initializer_from_json(json::parse(R"({"class_name": "Constant", "config": {"value": 1.25}})"), "k");
  for (float v : initialize(constant, {2, 3}, 0)) EXPECT_EQ(v, 1.25f);
  for (float v : initialize(named("ones"), {5}, 0)) EXPECT_EQ(v, 1.0f);
  for (float v : initialize(named("zeros"), {5}, 0)) EXPECT_EQ(v, 0.0f);
  const Initializer scaled = initializer_from_json(
      json::parse(R"({"class_name": "VarianceScaling", "config": {"scale": 3.0, "mode": "fan_out",
                      "distribution": "untruncated_normal"}})"), "k");
  EXPECT_NEAR(stats_of(initialize(scaled, kShape, 9)).std, std::sqrt(3.0 / kFanOut), 0.05 * std::sqrt(3.0 / kFanOut));
}

void expect_orthonormal_columns(const std::vector<float>& w, int64_t rows, int64_t cols, double gain) {
  for (int64_t a = 0; a < cols; ++a) {
    for (int64_t b = 0; b < cols; ++b) {
      double dot = 0;
      for (int64_t r = 0; r < rows; ++r) dot += double(w[r * cols + a]) * double(w[r * cols + b]);
      EXPECT_NEAR(dot, a == b ? gain * gain : 0.0, 1e-5) << a << "," << b;
    }
  }
}

TEST(Initializers, OrthogonalIsOrthogonal) {
  // Keras flattens to (prod(shape[:-1]), shape[-1]); with more rows than columns the columns are
  // orthonormal, otherwise the rows are.
  const std::vector<float> tall = initialize(named("orthogonal"), kShape, 2);
  expect_orthonormal_columns(tall, 3 * 3 * 3 * 16, 8, 1.0);
  const json fixture = initializer_fixture();
  EXPECT_NEAR(stats_of(tall).std, fixture["stats"]["keras3"]["orthogonal"]["std"].get<double>(), 1e-3);

  Initializer gained = named("orthogonal");
  gained.gain = 2.0;
  expect_orthonormal_columns(initialize(gained, {2, 1, 1, 3, 4}, 5), 6, 4, 2.0);

  // Wide: 2 rows of 8 -> the rows are orthonormal.
  const std::vector<float> wide = initialize(named("orthogonal"), {1, 1, 1, 2, 8}, 3);
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      double dot = 0;
      for (int c = 0; c < 8; ++c) dot += double(wide[a * 8 + c]) * double(wide[b * 8 + c]);
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-5);
    }
  }
}

TEST(Regularizers, SumsAreL1AbsPlusL2Squares) {
  const std::vector<float> w = {1.5f, -2.0f, 0.25f, 0.0f, -0.5f};
  const double abs_sum = 1.5 + 2.0 + 0.25 + 0.5, sq_sum = 2.25 + 4.0 + 0.0625 + 0.25;
  const Regularizer l1{"L1", 0.01, 0.0}, l2{"L2", 0.0, 0.02}, both{"L1L2", 0.3, 0.7};
  EXPECT_DOUBLE_EQ(regularization_loss(l1, w.data(), 5), 0.01 * abs_sum);
  EXPECT_DOUBLE_EQ(regularization_loss(l2, w.data(), 5), 0.02 * sq_sum);
  EXPECT_DOUBLE_EQ(regularization_loss(both, w.data(), 5), 0.3 * abs_sum + 0.7 * sq_sum);
  EXPECT_DOUBLE_EQ(regularization_loss(both, w.data(), 0), 0.0);
}

TEST(Constraints, NormAxesFollowKeras) {
  // MaxNorm(axis=0) on a (2, 3) tensor: column norms over axis 0.
  std::vector<float> w = {3, 0, 1, 4, 1, 0};  // columns: (3,4) norm 5, (0,1) norm 1, (1,0) norm 1
  const Constraint max_norm{"MaxNorm", 2.0, 0.0, 1.0, {0}};
  apply_constraint(max_norm, w.data(), {2, 3});
  EXPECT_NEAR(w[0], 3 * 2 / (5 + 1e-7), 1e-6);
  EXPECT_NEAR(w[3], 4 * 2 / (5 + 1e-7), 1e-6);
  EXPECT_NEAR(w[4], 1 / (1 + 1e-7), 1e-6) << "norms under the limit stay (up to Keras's epsilon)";
  // UnitNorm over the last axis with a negative index.
  std::vector<float> rows = {3, 4, 0, 0, 0, 2};
  apply_constraint(Constraint{"UnitNorm", 0, 0, 1, {-1}}, rows.data(), {2, 3});
  EXPECT_NEAR(rows[0], 0.6, 1e-6);
  EXPECT_NEAR(rows[1], 0.8, 1e-6);
  EXPECT_NEAR(rows[5], 1.0, 1e-6);
  // MinMaxNorm with rate blends the clipped and the original norm.
  std::vector<float> v = {0.1f, 0.0f};
  apply_constraint(Constraint{"MinMaxNorm", 2.0, 1.0, 0.5, {0}}, v.data(), {2});
  EXPECT_NEAR(v[0], 0.1 * (0.5 * 1.0 + 0.5 * 0.1) / (0.1 + 1e-7), 1e-6);
  std::vector<float> signs = {-1, 2, -0.5f};
  apply_constraint(Constraint{"NonNeg", 0, 0, 1, {0}}, signs.data(), {3});
  EXPECT_EQ(signs, (std::vector<float>{0, 2, 0}));
  std::vector<float> bad = {1, 2};
  try {
    apply_constraint(Constraint{"MaxNorm", 2.0, 0, 1, {3}}, bad.data(), {2});
    ADD_FAILURE() << "axis 3 on a 1-D tensor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("axis 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tconv3d
