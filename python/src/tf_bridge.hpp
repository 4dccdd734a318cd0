// The C interface between tconv3d._core and the TensorFlow op library
// (_tf_op.so, tf_op.cc). The op library is built against TensorFlow's headers
// only and links nothing of tconv3d: its kernel calls back into _core through
// this table, so a layer's specializations (and packed weights) are the same
// ones the NumPy API, tconv3d.jax and the layer's own Specializer objects use.
// _core hands the table over once, when tconv3d.keras loads the op library
// (_core._bind_tf_op), by calling the library's tconv3d_tf_bind.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// Bump on any change to the table below: _core and an op library built from
// another revision then refuse each other instead of misreading the table.
#define TCONV3D_TF_BRIDGE_VERSION 2

// Return codes of forward().
#define TCONV3D_TF_OK 0
#define TCONV3D_TF_INVALID_ARGUMENT 1  // a bad shape or argument (tconv3d::Error)
#define TCONV3D_TF_INTERNAL 2          // anything else, or a failed allocation

// The element type of x and y (the weights are always float32: Keras's
// variables, which a bf16 layer rounds to bf16 itself). Must be the layer's
// own dtype (Specializer's), else forward() fails naming it.
#define TCONV3D_TF_FLOAT32 0
#define TCONV3D_TF_BFLOAT16 1  // raw bf16 bits, 2 bytes an element (TensorFlow's bfloat16 layout)

// Gives the output buffer for a shape (of the call's dtype); null when the
// allocation failed (the allocator keeps its own error, which the op reports).
typedef void* (*Tconv3dTfAllocate)(void* context, const int64_t* shape, int rank);

struct Tconv3dTfTensor {
  const void* data;  // float or bf16 bits (x of a bf16 call); null: absent (a layer without bias)
  const int64_t* shape;
  int rank;
};

struct Tconv3dTfBridge {
  int version;  // TCONV3D_TF_BRIDGE_VERSION
  // Runs the layer registered as cache_id (Specializer.register_for_ffi) on x
  // (of `dtype`, TCONV3D_TF_FLOAT32 or TCONV3D_TF_BFLOAT16)
  // with these weights (compared with the cached ones, repacked only when
  // they changed): asks `allocate` for the output once its shape is known,
  // then computes into it. On failure writes a message to error (at most
  // error_size bytes, NUL-terminated) and returns a nonzero code.
  int (*forward)(int64_t cache_id, int dtype, Tconv3dTfTensor x, Tconv3dTfTensor kernel, Tconv3dTfTensor bias,
                 Tconv3dTfAllocate allocate, void* context, char* error, size_t error_size);
};

// Exported by the op library: 0 when it takes the table, -1 for another version.
typedef int (*Tconv3dTfBind)(const Tconv3dTfBridge* bridge);

}  // extern "C"
