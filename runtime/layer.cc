#include "tconv3d/layer.hpp"

#include <omp.h>

#include <algorithm>
#include <new>
#include <utility>

#include "core/activation.hpp"
#include "core/weights.hpp"
#include "runtime/executor_factory.hpp"
#include "runtime/layer_state.hpp"
#include "runtime/memory_guard.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

namespace {

std::vector<int64_t> kernel_shape_of(const ConvGeometry& g) {
  return {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
}

void check_glu_axis(const ConvGeometry& g, const Activation& activation) {
  if (activation.kind == ActivationKind::kGlu && g.output_shape()[4] % 2 != 0) {
    throw Error("activation", "glu splits the last axis in two halves, but the output's last axis has odd size " +
                                  std::to_string(g.output_shape()[4]));
  }
}

std::shared_ptr<WeightStore> copy_weights(const ConstTensor& kernel, const ConstTensor& bias, int64_t kernel_elements,
                                          int64_t bias_elements) {
  // The copy, and the packing that follows (about as large).
  check_allocatable(4.0 * 2.0 * double(kernel_elements), "kernel");
  try {
    std::vector<float> k(kernel.data, kernel.data + kernel_elements);
    std::vector<float> b;
    if (bias.data) b.assign(bias.data, bias.data + bias_elements);
    return std::make_shared<WeightStore>(std::move(k), std::move(b));
  } catch (const std::bad_alloc&) {
    throw Error("layer", "out of memory while copying the weights");
  }
}

// An explicit geometry (ONNX, PyTorch) for another input: the same crops on
// both ends of every axis, so the output follows the input as those
// frameworks' own formulas make it.
ConvGeometry with_input_shape(const ConvGeometry& g, const std::vector<int64_t>& input_shape) {
  if (input_shape.size() != 5) throw Error("input_shape", "expected 5 dimensions, got " + shape_to_string(input_shape));
  const bool last = g.data_format == DataFormat::kChannelsLast;
  ConvGeometry r = g;
  r.batch = input_shape[0];
  r.in_channels = input_shape[last ? 4 : 1];
  for (int a = 0; a < 3; ++a) {
    AxisGeometry& ax = r.axes[a];
    const int64_t crop_end = g.axes[a].crop_end();
    ax.in = input_shape[static_cast<size_t>(last ? 1 + a : 2 + a)];
    ax.out = ax.in > 0 ? ax.full_out() - ax.crop_begin - crop_end : 0;
  }
  validate_geometry(r);
  return r;
}

}  // namespace

Layer::Layer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Layer::Layer(Layer&&) noexcept = default;
Layer& Layer::operator=(Layer&&) noexcept = default;
Layer::~Layer() = default;

// What every way of creating a layer ends with, once shapes are checked and
// config, geometry and weights are set: the executor over those weights.
Layer Layer::finish(std::unique_ptr<State> state) {
  const ConvGeometry& g = state->geometry;
  const LayerConfig& config = state->config;
  const LayerOptions& options = state->options;
  if (options.threads < 0) throw Error("threads", "must be >= 0, got " + std::to_string(options.threads));
  // The packed weights (shared once packed) and one output-sized scratch for axis activations.
  check_allocatable(4.0 * (double(g.kernel_elements()) + double(g.output_elements())), "layer");
  try {
    Problem problem = make_problem(g, config.use_bias, config.activation);
    problem.dtype = options.dtype;
    if (options.dtype == DataType::kBfloat16 && !config.activation.is_elementwise())
      throw Error("activation", "bf16 layers take elementwise activations only, got " + config.activation.name);
    state->executor = make_executor(problem, *state->weights, options);
  } catch (const std::bad_alloc&) {
    throw Error("layer", "out of memory while creating the layer");
  }
  state->threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  return Layer(std::move(state));
}

Layer Layer::reshape(const std::vector<int64_t>& input_shape) const {
  const State& from = *state_;
  auto state = std::make_unique<State>();
  state->config = from.config;
  state->options = from.options;
  state->explicit_geometry = from.explicit_geometry;
  state->weights = from.weights;
  state->geometry = from.explicit_geometry ? with_input_shape(from.geometry, input_shape)
                                           : resolve_geometry(from.config, input_shape, &state->warnings);
  if (state->geometry.in_channels != from.geometry.in_channels) {
    throw Error("input_shape", "the input has " + std::to_string(state->geometry.in_channels) +
                                   " channels, but the layer's kernel takes " +
                                   std::to_string(from.geometry.in_channels));
  }
  check_glu_axis(state->geometry, state->config.activation);
  return finish(std::move(state));
}

int64_t Layer::weight_packs() const { return state_->weights->packs(); }

Layer Layer::create(const LayerConfig& config, const std::vector<int64_t>& input_shape, const ConstTensor& kernel,
                    const ConstTensor& bias, const LayerOptions& options) {
  validate(config);
  auto state = std::make_unique<State>();
  state->config = config;
  state->options = options;
  state->geometry = resolve_geometry(config, input_shape, &state->warnings);
  const ConvGeometry& g = state->geometry;

  const std::vector<int64_t> expected_kernel = kernel_shape_of(g);
  if (!kernel.data) throw Error("kernel", "no kernel given");
  if (kernel.shape != expected_kernel) {
    throw Error("kernel", "shape " + shape_to_string(kernel.shape) + " does not match the layer: expected " +
                              shape_to_string(expected_kernel) + " (kernel_size..., filters, input channels " +
                              std::to_string(g.in_channels) + ")");
  }
  if (config.use_bias && !bias.data) throw Error("bias", "use_bias is true but no bias was given");
  if (!config.use_bias && bias.data) throw Error("bias", "a bias was given but use_bias is false");
  if (bias.data && bias.shape != std::vector<int64_t>{g.out_channels}) {
    throw Error("bias", "shape " + shape_to_string(bias.shape) + " does not match the layer: expected (" +
                            std::to_string(g.out_channels) + ",)");
  }
  check_glu_axis(g, config.activation);
  state->weights = copy_weights(kernel, bias, g.kernel_elements(), g.out_channels);
  return finish(std::move(state));
}

Layer Layer::create_initialized(const LayerConfig& config, const std::vector<int64_t>& input_shape, uint64_t seed,
                                const LayerOptions& options) {
  validate(config);
  std::vector<std::string> ignored;
  const ConvGeometry g = resolve_geometry(config, input_shape, &ignored);
  check_allocatable(4.0 * double(g.kernel_elements()), "kernel");
  const std::vector<int64_t> kshape = kernel_shape_of(g);
  const std::vector<float> kernel = initialize(config.kernel_initializer, kshape, seed);
  std::vector<float> bias;
  if (config.use_bias) bias = initialize(config.bias_initializer, {g.out_channels}, seed + 1);
  return create(config, input_shape, ConstTensor{kernel.data(), kshape},
                config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{}, options);
}

Layer Layer::create_from_geometry(const ConvGeometry& geometry, const Activation& activation, const ConstTensor& kernel,
                                  const ConstTensor& bias, const LayerOptions& options) {
  validate_geometry(geometry);
  auto state = std::make_unique<State>();
  state->options = options;
  state->geometry = geometry;
  state->explicit_geometry = true;
  const ConvGeometry& g = state->geometry;
  // A config that tells what it can: the crops live only in the geometry.
  LayerConfig& c = state->config;
  c.filters = g.out_channels;
  for (int a = 0; a < 3; ++a) {
    c.kernel_size[a] = g.axes[a].kernel;
    c.strides[a] = g.axes[a].stride;
    c.dilation_rate[a] = g.axes[a].dilation;
  }
  c.data_format = g.data_format;
  c.activation = activation;
  c.use_bias = bias.data != nullptr;

  const std::vector<int64_t> expected_kernel = kernel_shape_of(g);
  if (!kernel.data) throw Error("kernel", "no kernel given");
  if (kernel.shape != expected_kernel)
    throw Error("kernel", "shape " + shape_to_string(kernel.shape) + " does not match the geometry: expected " +
                              shape_to_string(expected_kernel));
  if (bias.data && bias.shape != std::vector<int64_t>{g.out_channels})
    throw Error("bias", "shape " + shape_to_string(bias.shape) + " does not match the geometry: expected (" +
                            std::to_string(g.out_channels) + ",)");
  check_glu_axis(g, activation);
  state->weights = copy_weights(kernel, bias, g.kernel_elements(), g.out_channels);
  return finish(std::move(state));
}

void Layer::forward_bf16(const uint16_t* input, uint16_t* output) const {
  const State& s = *state_;
  if (s.options.dtype != DataType::kBfloat16)
    throw Error("dtype", "forward_bf16 on a float32 layer: create it with LayerOptions::dtype = bf16");
  s.executor->run_bf16(input, output, s.threads);
}

DataType Layer::dtype() const { return state_->options.dtype; }

void Layer::forward(const float* input, float* output) const {
  const State& s = *state_;
  if (s.options.dtype != DataType::kFloat32)
    throw Error("dtype", "this layer computes in bf16: use forward_bf16 (bf16 bits as uint16), not forward");
  const Activation& act = s.config.activation;
  if (act.is_elementwise()) {
    s.executor->run(input, output, s.threads);
    return;
  }
  const Shape5 pre = s.geometry.output_shape();
  const int64_t length = pre[4];
  const int64_t rows = s.geometry.output_elements() / length;
  if (act.kind == ActivationKind::kGlu) {
    std::vector<float> scratch(static_cast<size_t>(s.geometry.output_elements()));
    s.executor->run(input, scratch.data(), s.threads);
    apply_last_axis(act, scratch.data(), output, rows, length);
  } else {
    s.executor->run(input, output, s.threads);
    apply_last_axis(act, output, output, rows, length);
  }
}

const LayerConfig& Layer::config() const { return state_->config; }
const ConvGeometry& Layer::geometry() const { return state_->geometry; }
Shape5 Layer::input_shape() const { return state_->geometry.input_shape(); }
Shape5 Layer::output_shape() const { return activated_output_shape(state_->geometry, state_->config.activation); }
int64_t Layer::output_elements() const {
  const Shape5 s = output_shape();
  return s[0] * s[1] * s[2] * s[3] * s[4];
}
const std::vector<float>& Layer::kernel() const { return state_->weights->kernel(); }
const std::vector<float>& Layer::bias() const { return state_->weights->bias(); }
const std::vector<std::string>& Layer::warnings() const { return state_->warnings; }
Backend Layer::backend() const { return state_->executor->backend(); }
std::string Layer::isa() const { return state_->executor->isa(); }
std::string Layer::kernel_name() const { return state_->executor->kernel_name(); }
int Layer::threads() const { return state_->threads; }

Layer::Losses Layer::losses(const float* output) const {
  const State& s = *state_;
  Losses l;
  if (s.config.kernel_regularizer)
    l.kernel = regularization_loss(*s.config.kernel_regularizer, kernel().data(), int64_t(kernel().size()));
  if (s.config.bias_regularizer && !bias().empty())
    l.bias = regularization_loss(*s.config.bias_regularizer, bias().data(), int64_t(bias().size()));
  if (s.config.activity_regularizer && output) {
    l.activity =
        regularization_loss(*s.config.activity_regularizer, output, output_elements()) / double(s.geometry.batch);
  }
  return l;
}

}  // namespace tconv3d
