/* Calls two ahead-of-time kernels of the same layer, one with baked weights
 * and one packing Keras-layout weights at run time, and checks both against
 * the reference output computed by `tconv3d run --backend reference`.
 *   example DIR     (DIR holds input.npy kernel.npy bias.npy expected.npy) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "npy_io.h"
#include "up_baked.h"
#include "up_packed.h"

static double scaled_error(const float* got, const float* want, size_t n) {
  double scale = 1.0, error = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double d = fabs((double)got[i] - (double)want[i]);
    if (d != d) return INFINITY;
    if (fabs(want[i]) > scale) scale = fabs(want[i]);
    if (d > error) error = d;
  }
  return error / scale;
}

static float* load(const char* dir, const char* name, size_t expected) {
  char path[1024];
  size_t n = 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  float* data = npy_read(path, &n);
  if (data && expected && n != expected) {
    fprintf(stderr, "%s: %zu floats, expected %zu\n", path, n, expected);
    free(data);
    return NULL;
  }
  return data;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  float* input = load(dir, "input.npy", UP_BAKED_INPUT_ELEMENTS);
  float* kernel = load(dir, "kernel.npy", 0);
  float* bias = load(dir, "bias.npy", 0);
  float* expected = load(dir, "expected.npy", UP_BAKED_OUTPUT_ELEMENTS);
  float* output = malloc(sizeof(float) * UP_BAKED_OUTPUT_ELEMENTS);
  float* packed = malloc(sizeof(float) * up_packed_packed_size());
  void* workspace = malloc(up_baked_workspace_size() + up_packed_workspace_size() + 1);
  if (!input || !kernel || !bias || !expected || !output || !packed || !workspace) return 1;

  up_baked(input, output, workspace);
  const double baked_error = scaled_error(output, expected, UP_BAKED_OUTPUT_ELEMENTS);

  for (size_t i = 0; i < UP_BAKED_OUTPUT_ELEMENTS; ++i) output[i] = NAN;
  up_packed_pack(kernel, bias, packed);
  up_packed(input, output, packed, workspace);
  const double packed_error = scaled_error(output, expected, UP_PACKED_OUTPUT_ELEMENTS);

  printf("baked weights: scaled max error %.3g\nrun-time packed weights: scaled max error %.3g\n", baked_error,
         packed_error);
  const int ok = baked_error <= 1e-5 && packed_error <= 1e-5;
  printf("%s\n", ok ? "OK: both match the reference" : "FAILED: results differ from the reference");
  free(input), free(kernel), free(bias), free(expected), free(output), free(packed), free(workspace);
  return ok ? 0 : 1;
}
