// Layer::backward against real Keras: jax.grad of keras.layers.Conv3DTranspose
// (KERAS_BACKEND=jax) for every activation, both data formats, several
// paddings, strides, dilations and output paddings (tests/data/backward/,
// written by scripts/make_backward_fixtures.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

const std::string kDir = std::string(TCONV3D_TEST_DATA_DIR) + "/backward/";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class KerasBackward : public ::testing::TestWithParam<Backend> {};

TEST_P(KerasBackward, MatchesJaxGradOfKeras) {
  const nlohmann::json index = nlohmann::json::parse(read_text(kDir + "index.json"));
  int checked = 0;
  double worst = 0.0;
  for (const auto& entry : index["cases"]) {
    const std::string name = entry["name"];
    SCOPED_TRACE(name);
    const std::string dir = kDir + name + "/";
    const LayerConfig config = parse_layer_config(read_text(dir + "layer.json"));
    const NpyArray x = read_npy(dir + "input.npy"), k = read_npy(dir + "kernel.npy");
    const NpyArray dy = read_npy(dir + "grad_output.npy"), want_y = read_npy(dir + "output.npy");
    const bool bias = entry["use_bias"];
    NpyArray b;
    if (bias) b = read_npy(dir + "bias.npy");
    LayerOptions options;
    options.backend = GetParam();
    options.threads = 2;
    const Layer layer = Layer::create(config, x.shape, ConstTensor{k.data.data(), k.shape},
                                      bias ? ConstTensor{b.data.data(), b.shape} : ConstTensor{}, options);
    std::vector<float> y(size_t(layer.output_elements()));
    layer.forward(x.data.data(), y.data());
    ASSERT_LE(testing::scaled_max_error(y, want_y.data), 1e-5) << "forward";
    std::vector<float> dx(x.data.size()), dk(k.data.size()), db(b.data.size());
    layer.backward(x.data.data(), y.data(), dy.data.data(), dx.data(), dk.data(), bias ? db.data() : nullptr);
    const double e_dx = testing::scaled_max_error(dx, read_npy(dir + "grad_input.npy").data);
    const double e_dk = testing::scaled_max_error(dk, read_npy(dir + "grad_kernel.npy").data);
    const double e_db = bias ? testing::scaled_max_error(db, read_npy(dir + "grad_bias.npy").data) : 0.0;
    EXPECT_LE(e_dx, 1e-5) << "dx";
    EXPECT_LE(e_dk, 1e-5) << "dk";
    EXPECT_LE(e_db, 1e-5) << "db";
    worst = std::max({worst, e_dx, e_dk, e_db});
    ++checked;
  }
  EXPECT_GE(checked, 30);
  std::printf("%d cases, worst scaled error %.3g\n", checked, worst);
}

INSTANTIATE_TEST_SUITE_P(Backends, KerasBackward,
                         ::testing::Values(Backend::kReference, Backend::kGeneric, Backend::kAuto
#ifdef TCONV3D_HAVE_XBYAK
                                           ,
                                           Backend::kXbyak
#endif
#ifdef TCONV3D_HAVE_LLVM
                                           ,
                                           Backend::kLlvm
#endif
                                           ),
                         [](const auto& info) { return to_string(info.param); });

}  // namespace
}  // namespace tconv3d
