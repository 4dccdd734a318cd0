// What the float32 backward tests share (backward_test: generic and auto
// backends, generated_backward_test: Xbyak and LLVM): random layers small
// enough for the reference backward, their data (x, weights, the reference's
// y and a random dy) and the three gradients.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d::testing {

// A random layer (random_case with any activation) whose activation is drawn
// from `activations` (Keras 3 names), redrawn until it resolves, has at most
// 3 MFLOP and, for glu, an even number of filters.
RandomCase backward_case(std::mt19937_64& rng, const std::vector<const char*>& activations);

struct BackwardData {
  std::vector<float> x, k, b, y, dy;
  std::vector<int64_t> kshape;  // Keras layout (kd, kh, kw, filters, in)
};

struct Grads {
  std::vector<float> dx, dk, db;
};

// A layer of `c` over the data's weights (bias where the config has one).
Layer make_layer(const RandomCase& c, const BackwardData& d, const LayerOptions& options);
Layer make_layer(const RandomCase& c, const BackwardData& d, Backend backend, int threads);

// x in [-1, 1), kernel and bias in [-0.5, 0.5), y the reference forward's
// output, dy in [-1, 1): drawn from `rng` in that order.
BackwardData make_backward_data(const RandomCase& c, std::mt19937_64& rng);

// All three gradients of `layer` (db only where the data has a bias).
Grads backward(const Layer& layer, const BackwardData& d);

// Bitwise equal float arrays (memcmp: NaN payloads and -0 count).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace tconv3d::testing
