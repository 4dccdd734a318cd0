#include "tests/backward_test_support.hpp"

#include <cstring>
#include <exception>

#include "core/activation.hpp"

namespace tconv3d::testing {

RandomCase backward_case(std::mt19937_64& rng, const std::vector<const char*>& activations) {
  for (;;) {
    RandomCase c = random_case(rng, false);
    c.config.activation = parse_activation_name(
        activations[std::uniform_int_distribution<size_t>(0, activations.size() - 1)(rng)], Flavor::kKeras3);
    try {
      const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
      if (c.config.activation.kind == ActivationKind::kGlu && g.output_shape()[4] % 2) continue;
      if (g.flops() > 3e6) continue;
    } catch (const std::exception&) {
      continue;
    }
    return c;
  }
}

Layer make_layer(const RandomCase& c, const BackwardData& d, const LayerOptions& options) {
  return Layer::create(c.config, c.input_shape, ConstTensor{d.k.data(), d.kshape},
                       c.config.use_bias ? ConstTensor{d.b.data(), {c.config.filters}} : ConstTensor{}, options);
}

Layer make_layer(const RandomCase& c, const BackwardData& d, Backend backend, int threads) {
  LayerOptions options;
  options.backend = backend;
  options.threads = threads;
  return make_layer(c, d, options);
}

BackwardData make_backward_data(const RandomCase& c, std::mt19937_64& rng) {
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  BackwardData d;
  d.kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
  d.x = random_tensor(g.input_elements(), rng);
  d.k = random_tensor(g.kernel_elements(), rng, -0.5f, 0.5f);
  if (c.config.use_bias) d.b = random_tensor(g.out_channels, rng, -0.5f, 0.5f);
  const Layer reference = make_layer(c, d, Backend::kReference, 1);
  d.y.resize(size_t(reference.output_elements()));
  reference.forward(d.x.data(), d.y.data());
  d.dy = random_tensor(reference.output_elements(), rng);
  return d;
}

Grads backward(const Layer& layer, const BackwardData& d) {
  Grads g{std::vector<float>(d.x.size()), std::vector<float>(d.k.size()), std::vector<float>(d.b.size())};
  layer.backward(d.x.data(), d.y.data(), d.dy.data(), g.dx.data(), g.dk.data(), d.b.empty() ? nullptr : g.db.data());
  return g;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace tconv3d::testing
