/* Compiled as C99 (see tests/CMakeLists.txt) into c_api_test: proves that
 * tconv3d.h is valid C and that the API is usable from C alone. */
#include "tconv3d/tconv3d.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Declared again (C linkage) in c_api_test.cc. Returns 0 on success, else
 * writes what went wrong into `why`. */
int tconv3d_c_api_smoke_from_c(char* why, size_t why_size);

/* A 1x1x1 kernel with stride 2 spreads each input sample to every second
 * output sample: y = w * x + b there, b elsewhere (before the activation). */
int tconv3d_c_api_smoke_from_c(char* why, size_t why_size) {
  static const char* const config =
      "{\"filters\": 2, \"kernel_size\": 1, \"strides\": 2, \"padding\": \"valid\","
      " \"output_padding\": 1, \"use_bias\": true}";
  const int64_t input_shape[5] = {1, 1, 1, 2, 1};
  const float input[2] = {3.0f, -4.0f};
  const float kernel[2] = {0.5f, 2.0f}; /* (1, 1, 1, filters=2, in=1) */
  const int64_t kernel_shape[5] = {1, 1, 1, 2, 1};
  const float bias[2] = {1.0f, -1.0f};
  /* Output (1, 2, 2, 4, 2): only (d=0, h=0, w=0) and (d=0, h=0, w=2) receive input. */
  float output[1 * 2 * 2 * 4 * 2];
  int64_t out_shape[5];
  int64_t count = 0;
  char err[256];
  tconv3d_options opts;
  tconv3d_layer* layer = NULL;
  tconv3d_status status;
  int i;

  tconv3d_options_init(&opts);
  opts.backend = TCONV3D_BACKEND_GENERIC;
  opts.threads = 1;
  status = tconv3d_layer_create_from_json(config, input_shape, 5, kernel, kernel_shape, 5, bias, 2, &opts,
                                          &layer, err, sizeof err);
  if (status != TCONV3D_OK || layer == NULL) {
    snprintf(why, why_size, "create failed: %s: %s", tconv3d_status_name(status), err);
    return 1;
  }
  if (tconv3d_layer_output_shape(layer, out_shape) != TCONV3D_OK ||
      tconv3d_layer_output_elements(layer, &count) != TCONV3D_OK) {
    snprintf(why, why_size, "shape queries failed");
    tconv3d_layer_destroy(layer);
    return 1;
  }
  if (out_shape[0] != 1 || out_shape[1] != 2 || out_shape[2] != 2 || out_shape[3] != 4 || out_shape[4] != 2 ||
      count != 32) {
    snprintf(why, why_size, "output shape %lld,%lld,%lld,%lld,%lld (count %lld), expected 1,2,2,4,2",
             (long long)out_shape[0], (long long)out_shape[1], (long long)out_shape[2], (long long)out_shape[3],
             (long long)out_shape[4], (long long)count);
    tconv3d_layer_destroy(layer);
    return 1;
  }
  for (i = 0; i < 32; ++i) output[i] = NAN;
  status = tconv3d_layer_forward(layer, input, output, err, sizeof err);
  if (status != TCONV3D_OK) {
    snprintf(why, why_size, "forward failed: %s", err);
    tconv3d_layer_destroy(layer);
    return 1;
  }
  for (i = 0; i < 32; ++i) {
    const int channel = i % 2;
    const int w = (i / 2) % 4;
    const int hd = i / 8; /* d * 2 + h */
    float expected = bias[channel];
    if (hd == 0 && (w == 0 || w == 2)) expected += kernel[channel] * input[w / 2];
    if (fabsf(output[i] - expected) > 1e-6f) {
      snprintf(why, why_size, "output[%d] = %g, expected %g", i, (double)output[i], (double)expected);
      tconv3d_layer_destroy(layer);
      return 1;
    }
  }
  tconv3d_layer_destroy(layer);

  /* In C any int may sit in an enum: unknown values are refused, not undefined. */
  if (strcmp(tconv3d_status_name((tconv3d_status)77), "UNKNOWN_STATUS") != 0) {
    snprintf(why, why_size, "status 77 named '%s'", tconv3d_status_name((tconv3d_status)77));
    return 1;
  }
  tconv3d_options_init(&opts);
  opts.backend = (tconv3d_backend)42;
  layer = NULL;
  status = tconv3d_layer_create_from_json(config, input_shape, 5, kernel, kernel_shape, 5, bias, 2, &opts, &layer,
                                          err, sizeof err);
  if (status != TCONV3D_INVALID_ARGUMENT || layer != NULL || strstr(err, "options.backend") == NULL) {
    snprintf(why, why_size, "backend 42: got %s '%s'", tconv3d_status_name(status), err);
    tconv3d_layer_destroy(layer);
    return 1;
  }

  /* An error path from C: a bias with use_bias false. */
  layer = NULL;
  status = tconv3d_layer_create_from_json("{\"filters\": 2, \"kernel_size\": 1, \"use_bias\": false}", input_shape,
                                          5, kernel, kernel_shape, 5, bias, 2, NULL, &layer, err, sizeof err);
  if (status != TCONV3D_INVALID_ARGUMENT || layer != NULL || strstr(err, "bias") == NULL) {
    snprintf(why, why_size, "bias with use_bias false: got %s '%s'", tconv3d_status_name(status), err);
    tconv3d_layer_destroy(layer);
    return 1;
  }
  return 0;
}
