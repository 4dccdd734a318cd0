// The README's C++ snippet, completed into a program that a project outside
// this repository builds against the installed package (scripts/test-consumers.sh
// builds it through find_package and through pkg-config, as C++17):
//   1. a layer made from Keras's JSON and run, checked against a naive loop;
//   2. a bad input shape raising tconv3d::Error, caught by type;
//   3. with MODEL_FILE, a bundled Keras model loaded through tconv3d::Model,
//      every layer run and the first checked against the reference backend.
// Exit status 0 only if every check passes.
//   app [MODEL_FILE]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tconv3d/layer.hpp"
#ifdef TCONV3D_HAVE_MODELS
#include "tconv3d/model.hpp"
#endif

namespace {

std::vector<float> random_floats(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// Largest |got - want| over the largest |want| (at least 1).
double scaled_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double scale = 1.0, error = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    scale = std::fmax(scale, std::fabs(want[i]));
    error = std::fmax(error, std::fabs(double(got[i]) - want[i]));
    if (std::isnan(got[i])) return INFINITY;
  }
  return error / scale;
}

// Keras Conv3DTranspose, valid padding, channels_last, linear activation:
// y[od, oh, ow, f] = bias[f] + sum x[id, ih, iw, c] * w[kd, kh, kw, f, c]
// over od = id*s + kd (and so for h, w); the kernel is not flipped.
std::vector<float> naive_tconv(const std::vector<float>& x, int64_t n, int64_t d, int64_t h, int64_t w,
                               int64_t c, const std::vector<float>& kernel, int64_t k, int64_t filters,
                               const std::vector<float>& bias, int64_t s) {
  const int64_t od = (d - 1) * s + k, oh = (h - 1) * s + k, ow = (w - 1) * s + k;
  std::vector<float> y(static_cast<size_t>(n * od * oh * ow * filters));
  for (int64_t i = 0; i < n * od * oh * ow; ++i)
    for (int64_t f = 0; f < filters; ++f) y[i * filters + f] = bias[f];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t id = 0; id < d; ++id)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t iw = 0; iw < w; ++iw)
          for (int64_t kd = 0; kd < k; ++kd)
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const float* in = &x[(((b * d + id) * h + ih) * w + iw) * c];
                float* out = &y[(((b * od + id * s + kd) * oh + ih * s + kh) * ow + iw * s + kw) * filters];
                const float* wt = &kernel[((kd * k + kh) * k + kw) * filters * c];
                for (int64_t f = 0; f < filters; ++f) {
                  float acc = 0.0f;
                  for (int64_t ci = 0; ci < c; ++ci) acc += in[ci] * wt[f * c + ci];
                  out[f] += acc;
                }
              }
  return y;
}

bool check_layer() {
  const std::string json_text = R"({"class_name": "Conv3DTranspose", "config": {"name": "up",
      "filters": 32, "kernel_size": [3, 3, 3], "strides": [2, 2, 2], "padding": "valid",
      "data_format": "channels_last", "activation": "linear", "use_bias": true}})";
  const std::vector<float> kernel = random_floats(3 * 3 * 3 * 32 * 64, 1);
  const std::vector<float> bias = random_floats(32, 2);
  const std::vector<float> x = random_floats(1 * 16 * 16 * 16 * 64, 3);

  // The README's snippet.
  tconv3d::LayerConfig config = tconv3d::parse_layer_config(json_text);        // throws tconv3d::Error
  tconv3d::Layer layer = tconv3d::Layer::create(config, {1, 16, 16, 16, 64},   // input shape
                                                {kernel.data(), {3, 3, 3, 32, 64}},
                                                {bias.data(), {32}});
  std::vector<float> y(layer.output_elements());
  layer.forward(x.data(), y.data());

  const tconv3d::Shape5 want_shape = {1, 33, 33, 33, 32};
  if (layer.output_shape() != want_shape) {
    std::fprintf(stderr, "layer: output shape %s, expected (1, 33, 33, 33, 32)\n",
                 tconv3d::shape_to_string(layer.output_shape()).c_str());
    return false;
  }
  const double error = scaled_error(y, naive_tconv(x, 1, 16, 16, 16, 64, kernel, 3, 32, bias, 2));
  std::printf("layer: %s kernel %s, scaled error vs naive loop %.2e\n",
              tconv3d::to_string(layer.backend()).c_str(), layer.kernel_name().c_str(),
              error);
  return error < 1e-4;
}

bool check_error() {
  const std::string json_text = R"({"filters": 4, "kernel_size": 2, "strides": 2})";
  const std::vector<float> kernel(2 * 2 * 2 * 4 * 3, 1.0f), bias(4, 0.0f);
  try {
    // 5 input channels against a kernel made for 3.
    tconv3d::Layer::create(tconv3d::parse_layer_config(json_text), {1, 4, 4, 4, 5},
                           {kernel.data(), {2, 2, 2, 4, 3}}, {bias.data(), {4}});
  } catch (const tconv3d::Error& e) {
    std::printf("error: caught tconv3d::Error (argument '%s'): %s\n", e.argument().c_str(), e.what());
    return true;
  }
  std::fprintf(stderr, "error: a kernel for 3 channels on a 5-channel input raised nothing\n");
  return false;
}

bool check_model(const char* path) {
#ifdef TCONV3D_HAVE_MODELS
  const tconv3d::Model model = tconv3d::Model::load(path);
  std::printf("model: %s read as %s, %zu layers\n", path, model.format().c_str(), model.layers().size());
  if (model.layers().empty()) return false;
  for (size_t i = 0; i < model.layers().size(); ++i) {
    const tconv3d::ModelLayer& ml = model.layers()[i];
    std::vector<int64_t> shape = ml.info().input_shape;
    if (shape.size() != 5) {
      std::fprintf(stderr, "model: layer %s has no input shape\n", ml.name().c_str());
      return false;
    }
    if (shape[0] < 0) shape[0] = 1;
    int64_t n = 1;
    for (int64_t dim : shape) n *= dim;
    const std::vector<float> x = random_floats(n, 4);
    std::vector<float> y;
    std::vector<int64_t> y_shape;
    ml.forward(x.data(), shape, y, y_shape);
    std::printf("model: %s -> %s\n", ml.name().c_str(), tconv3d::shape_to_string(y_shape).c_str());
    if (i == 0) {  // one layer against the slow reference, to keep the test short
      tconv3d::LayerOptions options;
      options.backend = tconv3d::Backend::kReference;
      const tconv3d::Layer reference = ml.build(shape, options);
      std::vector<float> want(reference.output_elements());
      reference.forward(x.data(), want.data());
      const double error = scaled_error(y, want);
      std::printf("model: %s scaled error vs reference %.2e\n", ml.name().c_str(), error);
      if (!(error < 1e-4)) return false;
    }
  }
  return true;
#else
  std::fprintf(stderr, "model: %s given, but this tconv3d has no model loading\n", path);
  return false;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bool ok = check_layer();
    ok = check_error() && ok;
    if (argc > 1) ok = check_model(argv[1]) && ok;
    std::printf("%s\n", ok ? "app: all checks pass" : "app: FAILED");
    return ok ? 0 : 1;
  } catch (const tconv3d::Error& e) {
    std::fprintf(stderr, "app: unexpected tconv3d::Error: %s\n", e.what());
    return 1;
  }
}
