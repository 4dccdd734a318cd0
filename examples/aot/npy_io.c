#include "npy_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float* npy_read(const char* path, size_t* count) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    return NULL;
  }
  unsigned char magic[10];
  if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) {
    fprintf(stderr, "%s: not a .npy file\n", path);
    fclose(f);
    return NULL;
  }
  size_t header_len = magic[8] | (magic[9] << 8);
  if (magic[6] >= 2) {  /* version 2+: 4-byte header length */
    unsigned char more[2];
    if (fread(more, 1, 2, f) != 2) { fclose(f); return NULL; }
    header_len |= ((size_t)more[0] << 16) | ((size_t)more[1] << 24);
  }
  char* header = malloc(header_len + 1);
  if (!header || fread(header, 1, header_len, f) != header_len) { free(header); fclose(f); return NULL; }
  header[header_len] = 0;
  if (!strstr(header, "'<f4'") || strstr(header, "'fortran_order': True")) {
    fprintf(stderr, "%s: expected little-endian float32 in C order\n", path);
    free(header); fclose(f);
    return NULL;
  }
  size_t n = 1;
  const char* p = strchr(strstr(header, "'shape'"), '(') + 1;
  while (*p && *p != ')') {
    char* end;
    long v = strtol(p, &end, 10);
    if (end == p) { ++p; continue; }
    n *= (size_t)v;
    p = end;
  }
  free(header);
  float* data = malloc(n * sizeof(float) + 1);
  if (!data || fread(data, sizeof(float), n, f) != n) {
    fprintf(stderr, "%s: truncated\n", path);
    free(data); fclose(f);
    return NULL;
  }
  fclose(f);
  *count = n;
  return data;
}

int npy_write(const char* path, const long* shape, int rank, const float* data) {
  char dict[256];
  int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  size_t n = 1;
  for (int i = 0; i < rank; ++i) {
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%ld,%s", shape[i], i + 1 < rank ? " " : "");
    n *= (size_t)shape[i];
  }
  len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
  int total = 10 + len + 1;
  int pad = (64 - total % 64) % 64;
  FILE* f = fopen(path, "wb");
  if (!f) return 1;
  unsigned short header_len = (unsigned short)(len + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc(header_len & 0xff, f);
  fputc(header_len >> 8, f);
  fwrite(dict, 1, (size_t)len, f);
  for (int i = 0; i < pad; ++i) fputc(' ', f);
  fputc('\n', f);
  size_t written = fwrite(data, sizeof(float), n, f);
  return fclose(f) != 0 || written != n;
}
