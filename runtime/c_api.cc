// The C API (include/tconv3d/tconv3d.h) over tconv3d::Layer. Every entry point
// catches everything: no exception may unwind into a C caller.
#include "tconv3d/tconv3d.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"

struct tconv3d_layer {
  explicit tconv3d_layer(tconv3d::Layer l) : layer(std::move(l)) {}
  tconv3d::Layer layer;
  std::vector<std::string> warnings;
  std::string backend, isa, kernel_name;
};

namespace {

using tconv3d::Error;

// Input and kernel ranks beyond this are rejected before we read the arrays;
// the layer itself then insists on exactly 5.
constexpr int kMaxRank = 16;

// Copies prefix + message into the caller's buffer, truncating; allocates
// nothing, so it is safe inside a catch handler (even for bad_alloc).
void set_message(char* error, size_t error_size, const char* prefix, const char* message = "") {
  if (!error || error_size == 0) return;
  size_t n = 0;
  for (const char* part : {prefix, message}) {
    for (; *part && n + 1 < error_size; ++part) error[n++] = *part;
  }
  error[n] = '\0';
}

tconv3d_status fail(tconv3d_status status, char* error, size_t error_size, const char* prefix,
                    const char* message = "") {
  set_message(error, error_size, prefix, message);
  return status;
}

// tconv3d::Error carries no category, so it is classified by what it names:
// options that are valid values but unavailable here are UNSUPPORTED, sizes
// refused because they exceed the machine's memory are OUT_OF_MEMORY.
tconv3d_status classify(const Error& e) {
  if (e.argument() == "backend" || e.argument() == "isa") return TCONV3D_UNSUPPORTED;
  if (std::strstr(e.what(), "out of memory") || std::strstr(e.what(), "GiB of memory")) {
    return TCONV3D_OUT_OF_MEMORY;
  }
  return TCONV3D_INVALID_ARGUMENT;
}

// Runs `body` (which returns a status) and turns anything thrown into a status
// and a message.
template <typename Body>
tconv3d_status guarded(char* error, size_t error_size, Body&& body) noexcept {
  try {
    set_message(error, error_size, "");
    return body();
  } catch (const Error& e) {
    return fail(classify(e), error, error_size, e.what());
  } catch (const std::bad_alloc&) {
    return fail(TCONV3D_OUT_OF_MEMORY, error, error_size, "out of memory");
  } catch (const std::exception& e) {
    return fail(TCONV3D_INTERNAL, error, error_size, "internal error: ", e.what());
  } catch (...) {
    return fail(TCONV3D_INTERNAL, error, error_size, "internal error: unknown exception");
  }
}

std::vector<int64_t> shape_argument(const int64_t* shape, int rank, const char* name) {
  if (rank < 0 || rank > kMaxRank) {
    throw Error(name, "rank must be 0.." + std::to_string(kMaxRank) + ", got " + std::to_string(rank));
  }
  if (rank > 0 && !shape) throw Error(name, "is NULL");
  return std::vector<int64_t>(shape, shape + rank);
}

// A C caller may store any int in an enum field; in C++ loading an enum
// outside its declared values is undefined, so the fields are read as ints.
static_assert(sizeof(tconv3d_backend) == sizeof(int) && sizeof(tconv3d_isa) == sizeof(int) &&
              sizeof(tconv3d_flavor) == sizeof(int));
template <typename Enum>
int enum_bits(const Enum& field) {
  int value = 0;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

tconv3d::LayerOptions layer_options(const tconv3d_options* options) {
  tconv3d::LayerOptions out;
  if (!options) return out;
  switch (enum_bits(options->backend)) {
    case TCONV3D_BACKEND_AUTO: out.backend = tconv3d::Backend::kAuto; break;
    case TCONV3D_BACKEND_REFERENCE: out.backend = tconv3d::Backend::kReference; break;
    case TCONV3D_BACKEND_GENERIC: out.backend = tconv3d::Backend::kGeneric; break;
    case TCONV3D_BACKEND_XBYAK: out.backend = tconv3d::Backend::kXbyak; break;
    case TCONV3D_BACKEND_LLVM: out.backend = tconv3d::Backend::kLlvm; break;
    default: throw Error("options.backend", "unknown value " + std::to_string(enum_bits(options->backend)));
  }
  switch (enum_bits(options->isa)) {
    case TCONV3D_ISA_AUTO: out.isa = tconv3d::Isa::kAuto; break;
    case TCONV3D_ISA_AVX2: out.isa = tconv3d::Isa::kAvx2; break;
    case TCONV3D_ISA_AVX512: out.isa = tconv3d::Isa::kAvx512; break;
    default: throw Error("options.isa", "unknown value " + std::to_string(enum_bits(options->isa)));
  }
  if (options->threads < 0) {
    throw Error("options.threads", "must be >= 0, got " + std::to_string(options->threads));
  }
  out.threads = options->threads;
  return out;
}

std::optional<tconv3d::Flavor> flavor_option(const tconv3d_options* options) {
  if (!options) return std::nullopt;
  switch (enum_bits(options->flavor)) {
    case TCONV3D_FLAVOR_DETECT: return std::nullopt;
    case TCONV3D_FLAVOR_KERAS3: return tconv3d::Flavor::kKeras3;
    case TCONV3D_FLAVOR_TF_KERAS2: return tconv3d::Flavor::kTfKeras2;
  }
  throw Error("options.flavor", "unknown value " + std::to_string(enum_bits(options->flavor)));
}

// The C handle of a layer: the layer and the strings the C API hands out.
std::unique_ptr<tconv3d_layer> new_handle(tconv3d::Layer made, std::vector<std::string> warnings) {
  auto handle = std::make_unique<tconv3d_layer>(std::move(made));
  const tconv3d::Layer& layer = handle->layer;
  handle->warnings = std::move(warnings);
  handle->warnings.insert(handle->warnings.end(), layer.warnings().begin(), layer.warnings().end());
  handle->backend = tconv3d::to_string(layer.backend());
  handle->isa = layer.isa();
  handle->kernel_name = layer.kernel_name();
  return handle;
}

// Parses the config and options, then lets `make` build the tconv3d::Layer.
template <typename Make>
tconv3d_status create_layer(const char* config_json, const int64_t* input_shape, int input_rank,
                            const tconv3d_options* options, tconv3d_layer** out, char* error,
                            size_t error_size, Make&& make) noexcept {
  if (out) *out = nullptr;
  return guarded(error, error_size, [&] {
    if (!out) throw Error("out", "is NULL");
    if (!config_json) throw Error("config_json", "is NULL");
    const std::vector<int64_t> shape = shape_argument(input_shape, input_rank, "input_shape");
    const tconv3d::LayerOptions layer_opts = layer_options(options);
    std::vector<std::string> warnings;
    const tconv3d::LayerConfig config =
        tconv3d::parse_layer_config(config_json, flavor_option(options), &warnings);
    *out = new_handle(make(config, shape, layer_opts), std::move(warnings)).release();
    return TCONV3D_OK;
  });
}

// A layer from the caller's weights (C arguments checked here).
tconv3d::Layer layer_with_weights(const tconv3d::LayerConfig& config, const std::vector<int64_t>& shape,
                                  const tconv3d::LayerOptions& layer_opts, const float* kernel,
                                  const int64_t* kernel_shape, int kernel_rank, const float* bias, int64_t bias_len) {
  if (!kernel) throw Error("kernel", "is NULL");
  const std::vector<int64_t> kshape = shape_argument(kernel_shape, kernel_rank, "kernel_shape");
  if (!bias && bias_len != 0) throw Error("bias", "is NULL but bias_len is " + std::to_string(bias_len));
  const tconv3d::ConstTensor b = bias ? tconv3d::ConstTensor{bias, {bias_len}} : tconv3d::ConstTensor{};
  return tconv3d::Layer::create(config, shape, tconv3d::ConstTensor{kernel, kshape}, b, layer_opts);
}

void copy_shape(const tconv3d::Shape5& from, int64_t* to) {
  for (int i = 0; i < 5; ++i) to[i] = from[i];
}

// The forward of either dtype: NULLs and an output that overlaps the input
// are errors, then `run` computes.
template <typename T, typename Run>
tconv3d_status checked_forward(const tconv3d_layer* layer, const T* input, T* output, char* error, size_t error_size,
                               Run run) {
  return guarded(error, error_size, [&] {
    if (!layer) throw Error("layer", "is NULL");
    if (!input) throw Error("input", "is NULL");
    if (!output) throw Error("output", "is NULL");
    const auto in_begin = reinterpret_cast<uintptr_t>(input);
    const auto out_begin = reinterpret_cast<uintptr_t>(output);
    const uintptr_t in_end = in_begin + uintptr_t(layer->layer.geometry().input_elements()) * sizeof(T);
    const uintptr_t out_end = out_begin + uintptr_t(layer->layer.output_elements()) * sizeof(T);
    if (in_begin < out_end && out_begin < in_end) throw Error("output", "overlaps the input");
    run(layer->layer);
    return TCONV3D_OK;
  });
}

}  // namespace

extern "C" {

void tconv3d_options_init(tconv3d_options* options) {
  if (!options) return;
  options->backend = TCONV3D_BACKEND_AUTO;
  options->isa = TCONV3D_ISA_AUTO;
  options->threads = 0;
  options->flavor = TCONV3D_FLAVOR_DETECT;
}

const char* tconv3d_status_name(tconv3d_status status) {
  switch (enum_bits(status)) {
    case TCONV3D_OK: return "OK";
    case TCONV3D_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case TCONV3D_UNSUPPORTED: return "UNSUPPORTED";
    case TCONV3D_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case TCONV3D_INTERNAL: return "INTERNAL";
  }
  return "UNKNOWN_STATUS";
}

tconv3d_status tconv3d_layer_create_from_json(const char* config_json, const int64_t* input_shape,
                                              int input_rank, const float* kernel,
                                              const int64_t* kernel_shape, int kernel_rank,
                                              const float* bias, int64_t bias_len,
                                              const tconv3d_options* options, tconv3d_layer** out,
                                              char* error, size_t error_size) {
  return create_layer(config_json, input_shape, input_rank, options, out, error, error_size,
                      [&](const tconv3d::LayerConfig& config, const std::vector<int64_t>& shape,
                          const tconv3d::LayerOptions& layer_opts) {
                        return layer_with_weights(config, shape, layer_opts, kernel, kernel_shape, kernel_rank,
                                                  bias, bias_len);
                      });
}

tconv3d_status tconv3d_layer_create_bf16_from_json(const char* config_json, const int64_t* input_shape,
                                                   int input_rank, const float* kernel,
                                                   const int64_t* kernel_shape, int kernel_rank,
                                                   const float* bias, int64_t bias_len,
                                                   const tconv3d_options* options, tconv3d_layer** out,
                                                   char* error, size_t error_size) {
  return create_layer(config_json, input_shape, input_rank, options, out, error, error_size,
                      [&](const tconv3d::LayerConfig& config, const std::vector<int64_t>& shape,
                          tconv3d::LayerOptions layer_opts) {
                        layer_opts.dtype = tconv3d::DataType::kBfloat16;
                        return layer_with_weights(config, shape, layer_opts, kernel, kernel_shape, kernel_rank,
                                                  bias, bias_len);
                      });
}

tconv3d_status tconv3d_layer_create_initialized_from_json(const char* config_json,
                                                          const int64_t* input_shape, int input_rank,
                                                          uint64_t seed, const tconv3d_options* options,
                                                          tconv3d_layer** out, char* error,
                                                          size_t error_size) {
  return create_layer(config_json, input_shape, input_rank, options, out, error, error_size,
                      [&](const tconv3d::LayerConfig& config, const std::vector<int64_t>& shape,
                          const tconv3d::LayerOptions& layer_opts) {
                        return tconv3d::Layer::create_initialized(config, shape, seed, layer_opts);
                      });
}

tconv3d_status tconv3d_layer_reshape(const tconv3d_layer* layer, const int64_t* input_shape, int input_rank,
                                     tconv3d_layer** out, char* error, size_t error_size) {
  if (out) *out = nullptr;
  return guarded(error, error_size, [&] {
    if (!out) throw Error("out", "is NULL");
    if (!layer) throw Error("layer", "is NULL");
    const std::vector<int64_t> shape = shape_argument(input_shape, input_rank, "input_shape");
    *out = new_handle(layer->layer.reshape(shape), {}).release();
    return TCONV3D_OK;
  });
}

void tconv3d_layer_destroy(tconv3d_layer* layer) { delete layer; }

tconv3d_status tconv3d_layer_input_shape(const tconv3d_layer* layer, int64_t shape[5]) {
  if (!layer || !shape) return TCONV3D_INVALID_ARGUMENT;
  copy_shape(layer->layer.input_shape(), shape);
  return TCONV3D_OK;
}

tconv3d_status tconv3d_layer_output_shape(const tconv3d_layer* layer, int64_t shape[5]) {
  if (!layer || !shape) return TCONV3D_INVALID_ARGUMENT;
  copy_shape(layer->layer.output_shape(), shape);
  return TCONV3D_OK;
}

tconv3d_status tconv3d_layer_output_elements(const tconv3d_layer* layer, int64_t* count) {
  if (!layer || !count) return TCONV3D_INVALID_ARGUMENT;
  *count = layer->layer.output_elements();
  return TCONV3D_OK;
}

tconv3d_status tconv3d_layer_forward(const tconv3d_layer* layer, const float* input, float* output,
                                     char* error, size_t error_size) {
  return checked_forward(layer, input, output, error, error_size,
                         [&](const tconv3d::Layer& l) { l.forward(input, output); });
}

tconv3d_status tconv3d_layer_backward(const tconv3d_layer* layer, const float* x, const float* y, const float* dy,
                                      float* dx, float* dk, float* db, char* error, size_t error_size) {
  return guarded(error, error_size, [&] {
    if (!layer) throw Error("layer", "is NULL");
    layer->layer.backward(x, y, dy, dx, dk, db);
    return TCONV3D_OK;
  });
}

tconv3d_status tconv3d_layer_forward_bf16(const tconv3d_layer* layer, const uint16_t* input, uint16_t* output,
                                          char* error, size_t error_size) {
  return checked_forward(layer, input, output, error, error_size,
                         [&](const tconv3d::Layer& l) { l.forward_bf16(input, output); });
}

tconv3d_status tconv3d_layer_backward_bf16(const tconv3d_layer* layer, const uint16_t* x, const uint16_t* y,
                                           const uint16_t* dy, uint16_t* dx, float* dk, float* db, char* error,
                                           size_t error_size) {
  return guarded(error, error_size, [&] {
    if (!layer) throw Error("layer", "is NULL");
    layer->layer.backward_bf16(x, y, dy, dx, dk, db);
    return TCONV3D_OK;
  });
}

int tconv3d_layer_is_bf16(const tconv3d_layer* layer) {
  return layer && layer->layer.dtype() == tconv3d::DataType::kBfloat16 ? 1 : 0;
}

tconv3d_status tconv3d_layer_losses(const tconv3d_layer* layer, const float* output, double* kernel_loss,
                                    double* bias_loss, double* activity_loss) {
  if (!layer || !kernel_loss || !bias_loss || !activity_loss) return TCONV3D_INVALID_ARGUMENT;
  return guarded(nullptr, 0, [&] {
    const tconv3d::Layer::Losses losses = layer->layer.losses(output);
    *kernel_loss = losses.kernel;
    *bias_loss = losses.bias;
    *activity_loss = losses.activity;
    return TCONV3D_OK;
  });
}

int tconv3d_layer_warning_count(const tconv3d_layer* layer) {
  return layer ? static_cast<int>(layer->warnings.size()) : 0;
}

const char* tconv3d_layer_warning(const tconv3d_layer* layer, int index) {
  if (!layer || index < 0 || size_t(index) >= layer->warnings.size()) return nullptr;
  return layer->warnings[size_t(index)].c_str();
}

const char* tconv3d_layer_backend(const tconv3d_layer* layer) { return layer ? layer->backend.c_str() : ""; }
const char* tconv3d_layer_isa(const tconv3d_layer* layer) { return layer ? layer->isa.c_str() : ""; }
const char* tconv3d_layer_kernel_name(const tconv3d_layer* layer) {
  return layer ? layer->kernel_name.c_str() : "";
}
int tconv3d_layer_threads(const tconv3d_layer* layer) { return layer ? layer->layer.threads() : 0; }

}  // extern "C"
