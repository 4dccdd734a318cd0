/* A C99 program on the C API alone (tconv3d/tconv3d.h), built by
 * scripts/test-consumers.sh through pkg-config. The layer is chosen so every
 * output is known: kernel 2 with stride 2 gives each output voxel exactly one
 * tap per axis, so with weights 1, inputs 1, 3 channels and bias 0.5 every
 * output is 3.5. Also checks that a bad input rank fails with a message.
 * Exit status 0 only if every check passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tconv3d/tconv3d.h"

int main(void) {
  const char* json =
      "{\"filters\": 4, \"kernel_size\": [2, 2, 2], \"strides\": [2, 2, 2], \"padding\": \"valid\","
      " \"activation\": \"linear\", \"use_bias\": true}";
  const int64_t in_shape[5] = {1, 3, 3, 3, 3};
  const int64_t k_shape[5] = {2, 2, 2, 4, 3};
  float kernel[2 * 2 * 2 * 4 * 3], bias[4], input[3 * 3 * 3 * 3];
  char err[512];
  tconv3d_layer* layer = NULL;
  int64_t out_shape[5], count = 0, i;
  size_t j;
  float* output;
  int ok = 1;

  for (j = 0; j < sizeof kernel / sizeof kernel[0]; ++j) kernel[j] = 1.0f;
  for (j = 0; j < 4; ++j) bias[j] = 0.5f;
  for (j = 0; j < sizeof input / sizeof input[0]; ++j) input[j] = 1.0f;

  if (tconv3d_layer_create_from_json(json, in_shape, 5, kernel, k_shape, 5, bias, 4, NULL, &layer, err,
                                     sizeof err) != TCONV3D_OK) {
    fprintf(stderr, "app_c: create failed: %s\n", err);
    return 1;
  }
  tconv3d_layer_output_shape(layer, out_shape);
  tconv3d_layer_output_elements(layer, &count);
  if (out_shape[0] != 1 || out_shape[1] != 6 || out_shape[2] != 6 || out_shape[3] != 6 || out_shape[4] != 4 ||
      count != 6 * 6 * 6 * 4) {
    fprintf(stderr, "app_c: output shape is not (1, 6, 6, 6, 4)\n");
    ok = 0;
  }
  output = malloc(sizeof(float) * (size_t)count);
  if (!output || tconv3d_layer_forward(layer, input, output, err, sizeof err) != TCONV3D_OK) {
    fprintf(stderr, "app_c: forward failed: %s\n", err);
    return 1;
  }
  for (i = 0; i < count; ++i) {
    if (fabsf(output[i] - 3.5f) > 1e-5f) {
      fprintf(stderr, "app_c: output[%lld] = %g, expected 3.5\n", (long long)i, output[i]);
      ok = 0;
      break;
    }
  }
  printf("app_c: %s backend, %s isa, kernel %s\n", tconv3d_layer_backend(layer), tconv3d_layer_isa(layer),
         tconv3d_layer_kernel_name(layer));
  free(output);
  tconv3d_layer_destroy(layer);

  /* A rank-4 input must be refused, with a message and no layer. */
  layer = NULL;
  err[0] = '\0';
  if (tconv3d_layer_create_from_json(json, in_shape, 4, kernel, k_shape, 5, bias, 4, NULL, &layer, err,
                                     sizeof err) != TCONV3D_INVALID_ARGUMENT ||
      layer != NULL || err[0] == '\0') {
    fprintf(stderr, "app_c: a rank-4 input was not refused as INVALID_ARGUMENT with a message\n");
    ok = 0;
  } else {
    printf("app_c: rank-4 input refused: %s\n", err);
  }
  printf("%s\n", ok ? "app_c: all checks pass" : "app_c: FAILED");
  return ok ? 0 : 1;
}
