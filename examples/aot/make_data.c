/* Writes a deterministic input, kernel and bias as .npy files for the example:
 *   make_data DIR N,D,H,W,C KD,KH,KW,FILTERS,CIN */
#include <stdio.h>
#include <stdlib.h>

#include "npy_io.h"

static unsigned long long state = 0x9E3779B97F4A7C15ull;
static float next_uniform(void) { /* in [-1, 1) */
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((state >> 40) / 8388608.0 - 1.0);
}

static int parse5(const char* text, long* v) {
  return sscanf(text, "%ld,%ld,%ld,%ld,%ld", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5 ? 0 : 1;
}

static int write_random(const char* dir, const char* name, const long* shape, int rank) {
  size_t n = 1;
  for (int i = 0; i < rank; ++i) n *= (size_t)shape[i];
  float* data = malloc(n * sizeof(float));
  if (!data) return 1;
  for (size_t i = 0; i < n; ++i) data[i] = next_uniform();
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int rc = npy_write(path, shape, rank, data);
  free(data);
  return rc;
}

int main(int argc, char** argv) {
  long in[5], k[5];
  if (argc != 4 || parse5(argv[2], in) || parse5(argv[3], k)) {
    fprintf(stderr, "usage: make_data DIR N,D,H,W,C KD,KH,KW,FILTERS,CIN\n");
    return 2;
  }
  long bias[1] = {k[3]};
  return write_random(argv[1], "input.npy", in, 5) || write_random(argv[1], "kernel.npy", k, 5) ||
         write_random(argv[1], "bias.npy", bias, 1);
}
