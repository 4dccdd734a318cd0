/* Minimal .npy (float32, C order, little endian) reading and writing for the
 * example programs; plain C99, no dependencies. */
#ifndef TCONV3D_EXAMPLE_NPY_IO_H
#define TCONV3D_EXAMPLE_NPY_IO_H

#include <stddef.h>

/* Returns a malloc'ed array and its element count, or NULL with a message on stderr. */
float* npy_read(const char* path, size_t* count);
/* shape has rank entries. Returns 0 on success. */
int npy_write(const char* path, const long* shape, int rank, const float* data);

#endif
