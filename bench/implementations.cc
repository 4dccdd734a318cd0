#include "bench/implementations.hpp"

#include <stdexcept>

#include "bench/onednn_deconv.hpp"

namespace tconv3d::bench {
namespace {

class LayerImplementation final : public Implementation {
 public:
  explicit LayerImplementation(Layer layer) : layer_(std::move(layer)) {}
  void run(const float* input, float* output) const override { layer_.forward(input, output); }
  std::string label() const override { return layer_.kernel_name(); }
  bool uses_zmm() const override { return layer_.isa() == "avx512"; }

 private:
  Layer layer_;
};

#ifdef TCONV3D_HAVE_ONEDNN
class OneDnnImplementation final : public Implementation {
 public:
  OneDnnImplementation(const LayerData& data, int threads)
      : deconv_(data.geometry, data.entry.config.activation, data.kernel.data(),
                data.bias.empty() ? nullptr : data.bias.data(), threads) {}
  void run(const float* input, float* output) const override { deconv_.run(input, output); }
  std::string label() const override { return "onednn " + deconv_.impl() + " (" + onednn_isa_name() + ")"; }
  bool uses_zmm() const override { return deconv_.uses_zmm(); }

 private:
  OneDnnDeconv deconv_;
};
#endif

}  // namespace

const std::vector<std::string>& implementation_names() {
  static const std::vector<std::string> names = {"generic", "xbyak", "onednn"};
  return names;
}

std::unique_ptr<Implementation> make_implementation(const std::string& name, const LayerData& data, int threads) {
  if (name == "generic") return std::make_unique<LayerImplementation>(data.make_layer(Backend::kGeneric, threads));
  if (name == "xbyak") {
#ifdef TCONV3D_HAVE_XBYAK
    return std::make_unique<LayerImplementation>(data.make_layer(Backend::kXbyak, threads));
#else
    throw std::runtime_error("xbyak is not in this build (configure with libxbyak-dev installed)");
#endif
  }
  if (name == "onednn") {
#ifdef TCONV3D_HAVE_ONEDNN
    return std::make_unique<OneDnnImplementation>(data, threads);
#else
    throw std::runtime_error("oneDNN is not in this build (apt: libdnnl-dev)");
#endif
  }
  throw std::runtime_error("unknown implementation '" + name + "'");
}

}  // namespace tconv3d::bench
