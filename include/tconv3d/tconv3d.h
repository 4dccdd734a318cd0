/*
 * tconv3d C API: one Keras Conv3DTranspose layer, made for one input shape,
 * callable from C (C99 or later) and from any language with a C FFI.
 *
 * It wraps the C++ tconv3d::Layer. Nothing thrown inside ever crosses this
 * boundary: every function that can fail returns a tconv3d_status, and
 * writes a human-readable message naming the bad argument into a buffer the
 * caller provides (error / error_size; both may be NULL / 0 when the caller
 * does not want the text). There is no global or thread-local error state, so
 * any number of threads may call in at once.
 *
 * Messages are always NUL-terminated and truncated to error_size - 1 bytes.
 * On success the buffer is set to the empty string.
 *
 * Typical use:
 *
 *   tconv3d_options opts;
 *   tconv3d_options_init(&opts);
 *   opts.threads = 4;
 *   char err[512];
 *   tconv3d_layer* layer = NULL;
 *   int64_t in_shape[5] = {1, 8, 8, 8, 16};
 *   int64_t k_shape[5] = {3, 3, 3, 32, 16};   (kd, kh, kw, filters, in_channels)
 *   if (tconv3d_layer_create_from_json(json, in_shape, 5, kernel, k_shape, 5,
 *                                      bias, 32, &opts, &layer, err, sizeof err)
 *       != TCONV3D_OK) { fprintf(stderr, "%s\n", err); ... }
 *   int64_t out_shape[5];
 *   tconv3d_layer_output_shape(layer, out_shape);
 *   ... allocate out_shape[0]*...*out_shape[4] floats ...
 *   tconv3d_layer_forward(layer, input, output, err, sizeof err);
 *   tconv3d_layer_destroy(layer);
 *
 * Tensors are dense float32 arrays in C order, in the layer's data format:
 * (N, D, H, W, C) for channels_last, (N, C, D, H, W) for channels_first.
 * The kernel is in Keras's layout (kd, kh, kw, filters, in_channels); the bias
 * has `filters` elements.
 */
#ifndef TCONV3D_TCONV3D_H_
#define TCONV3D_TCONV3D_H_

#include <stddef.h>
#include <stdint.h>

#include "tconv3d/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tconv3d_status {
  TCONV3D_OK = 0,
  /* A bad argument: NULL pointer, malformed JSON, a config Keras rejects,
   * a shape that does not match the layer, a bias with use_bias false... */
  TCONV3D_INVALID_ARGUMENT = 1,
  /* Valid, but not available here: a backend left out of this build, or an
   * ISA (avx2/avx512) this CPU or OS cannot run. */
  TCONV3D_UNSUPPORTED = 2,
  /* The buffers needed do not fit in this machine's memory. */
  TCONV3D_OUT_OF_MEMORY = 3,
  /* A bug in tconv3d; the message says what happened. */
  TCONV3D_INTERNAL = 4
} tconv3d_status;

typedef enum tconv3d_backend {
  TCONV3D_BACKEND_AUTO = 0, /* the fastest this build and CPU offer */
  TCONV3D_BACKEND_REFERENCE = 1,
  TCONV3D_BACKEND_GENERIC = 2,
  TCONV3D_BACKEND_XBYAK = 3,
  TCONV3D_BACKEND_LLVM = 4
} tconv3d_backend;

typedef enum tconv3d_isa {
  TCONV3D_ISA_AUTO = 0, /* honours the TCONV3D_ISA environment variable, then the CPU */
  TCONV3D_ISA_AVX2 = 1,
  TCONV3D_ISA_AVX512 = 2
} tconv3d_isa;

typedef enum tconv3d_flavor {
  /* Keras 3, unless the JSON is in the tf.keras 2.x dialect (has `groups`,
   * lacks `dilation_rate`); the choice is reported as a warning. */
  TCONV3D_FLAVOR_DETECT = 0,
  TCONV3D_FLAVOR_KERAS3 = 1,
  TCONV3D_FLAVOR_TF_KERAS2 = 2
} tconv3d_flavor;

typedef struct tconv3d_options {
  tconv3d_backend backend;
  tconv3d_isa isa;
  int threads; /* 0: all the process may use (OpenMP's default); must be >= 0 */
  tconv3d_flavor flavor;
} tconv3d_options;

/* Opaque: one layer with its packed weights and chosen kernel. */
typedef struct tconv3d_layer tconv3d_layer;

/* Fills `options` with the defaults (auto backend and ISA, all threads,
 * detected flavor). Passing NULL options to the create functions means the same. */
TCONV3D_API void tconv3d_options_init(tconv3d_options* options);

/* A static, never-NULL name for a status ("OK", "INVALID_ARGUMENT", ...). */
TCONV3D_API const char* tconv3d_status_name(tconv3d_status status);

/* Creates a layer from Keras's JSON (a get_config() dict, or
 * {"class_name": "Conv3DTranspose", "config": {...}}), an input shape of
 * `input_rank` dimensions (must be 5), and the weights. kernel_rank must be 5.
 * bias may be NULL (then bias_len must be 0); it is required iff the config's
 * use_bias is true. The weights are copied: the caller's buffers may be freed
 * afterwards. On failure *out is set to NULL. */
TCONV3D_API tconv3d_status tconv3d_layer_create_from_json(const char* config_json, const int64_t* input_shape,
                                                          int input_rank, const float* kernel,
                                                          const int64_t* kernel_shape, int kernel_rank,
                                                          const float* bias, int64_t bias_len,
                                                          const tconv3d_options* options, tconv3d_layer** out,
                                                          char* error, size_t error_size);

/* Same, as a bf16 layer (Keras's mixed_bfloat16 policy: the float32 kernel
 * rounded to bf16, bf16 inputs and outputs, float32 accumulation): run it with
 * tconv3d_layer_forward_bf16 and tconv3d_layer_backward_bf16. Needs
 * AVX512_BF16 unless options->backend is TCONV3D_BACKEND_REFERENCE. */
TCONV3D_API tconv3d_status tconv3d_layer_create_bf16_from_json(const char* config_json, const int64_t* input_shape,
                                                               int input_rank, const float* kernel,
                                                               const int64_t* kernel_shape, int kernel_rank,
                                                               const float* bias, int64_t bias_len,
                                                               const tconv3d_options* options, tconv3d_layer** out,
                                                               char* error, size_t error_size);

/* Same, with the weights drawn from the config's initializers; the same seed
 * gives the same weights on every machine. */
TCONV3D_API tconv3d_status tconv3d_layer_create_initialized_from_json(
    const char* config_json, const int64_t* input_shape, int input_rank, uint64_t seed,
    const tconv3d_options* options, tconv3d_layer** out, char* error, size_t error_size);

/* The same layer for another input shape (batch and spatial sizes; the same
 * channels) as a new layer: it shares `layer`'s weights and their packing,
 * and a shape seen before compiles nothing. Free both layers independently.
 * On failure *out is set to NULL. */
TCONV3D_API tconv3d_status tconv3d_layer_reshape(const tconv3d_layer* layer, const int64_t* input_shape, int input_rank,
                                     tconv3d_layer** out, char* error, size_t error_size);

/* Frees the layer; NULL is allowed. */
TCONV3D_API void tconv3d_layer_destroy(tconv3d_layer* layer);

/* The input shape the layer was made for, and its output shape (after the
 * activation: glu halves the last axis). Both in the layer's data format. */
TCONV3D_API tconv3d_status tconv3d_layer_input_shape(const tconv3d_layer* layer, int64_t shape[5]);
TCONV3D_API tconv3d_status tconv3d_layer_output_shape(const tconv3d_layer* layer, int64_t shape[5]);

/* The product of the output shape: how many floats `output` must hold. */
TCONV3D_API tconv3d_status tconv3d_layer_output_elements(const tconv3d_layer* layer, int64_t* count);

/* Computes the layer. input holds the input shape's element count, output the
 * output's; they must not overlap. Safe to call from several threads at once
 * on the same layer. */
TCONV3D_API tconv3d_status tconv3d_layer_forward(const tconv3d_layer* layer, const float* input,
                                                 float* output, char* error, size_t error_size);

/* The gradients of the layer's output for an output gradient dy, as Keras's
 * autodiff computes them. All arrays float32 in the layer's data format:
 *   x: the input (input shape), y: the forward output the caller holds (a
 *   result of tconv3d_layer_forward, output shape), dy: the gradient with
 *   respect to y (output shape);
 *   dx: input shape; dk: (kd, kh, kw, filters, in_channels); db: filters.
 * dx, dk and db may each be NULL to skip it (db must be NULL for a layer
 * without bias). x is needed for dk and for activations whose derivative
 * needs the pre-activation output (silu, gelu, mish, glu, hard_tanh, ...),
 * y for the other activations but linear; either may be NULL where it is not
 * needed. Outputs must not overlap the inputs or each other. The results do
 * not depend on the thread count. Safe to call from several threads at once. */
TCONV3D_API tconv3d_status tconv3d_layer_backward(const tconv3d_layer* layer, const float* x, const float* y,
                                                  const float* dy, float* dx, float* dk, float* db,
                                                  char* error, size_t error_size);

/* A bf16 layer's forward and backward (tconv3d_layer_is_bf16 is 1; the float32
 * functions refuse such a layer, and these a float32 one). bf16 values are raw
 * bits (the upper half of a float32, uint16_t), in the layer's data format.
 * Backward: x, y, dy and dx bf16, dk (kd, kh, kw, filters, in_channels) and db
 * float32, the float32 variables' gradients; otherwise as
 * tconv3d_layer_backward (NULL skips, what each activation needs, results
 * that do not depend on the thread count). */
TCONV3D_API tconv3d_status tconv3d_layer_forward_bf16(const tconv3d_layer* layer, const uint16_t* input,
                                                      uint16_t* output, char* error, size_t error_size);
TCONV3D_API tconv3d_status tconv3d_layer_backward_bf16(const tconv3d_layer* layer, const uint16_t* x,
                                                       const uint16_t* y, const uint16_t* dy, uint16_t* dx,
                                                       float* dk, float* db, char* error, size_t error_size);
TCONV3D_API int tconv3d_layer_is_bf16(const tconv3d_layer* layer); /* 1: bf16, 0: float32 or NULL */

/* The loss terms Keras would add for this layer: kernel and bias regularizer
 * on the weights, and the activity regularizer on `output` (a result of
 * tconv3d_layer_forward) divided by the batch size. Zero where the config sets
 * no regularizer. output may be NULL, then activity is 0. */
TCONV3D_API tconv3d_status tconv3d_layer_losses(const tconv3d_layer* layer, const float* output,
                                                double* kernel_loss, double* bias_loss,
                                                double* activity_loss);

/* Warnings from creation (e.g. a dilation tf.keras 2.x would ignore, or the
 * flavor that was detected). The strings live as long as the layer. */
TCONV3D_API int tconv3d_layer_warning_count(const tconv3d_layer* layer);
TCONV3D_API const char* tconv3d_layer_warning(const tconv3d_layer* layer,
                                              int index); /* NULL if out of range */

/* What runs: backend ("reference", "generic", ...), ISA ("avx2", "avx512",
 * "none") and kernel name. Strings live as long as the layer; NULL layer gives "". */
TCONV3D_API const char* tconv3d_layer_backend(const tconv3d_layer* layer);
TCONV3D_API const char* tconv3d_layer_isa(const tconv3d_layer* layer);
TCONV3D_API const char* tconv3d_layer_kernel_name(const tconv3d_layer* layer);
/* The thread count forward() uses. */
TCONV3D_API int tconv3d_layer_threads(const tconv3d_layer* layer);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TCONV3D_TCONV3D_H_ */
