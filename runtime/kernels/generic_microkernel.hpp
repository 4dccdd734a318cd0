// The generic kernel's inner loop, compiled once per instruction set (see
// generic_sse2.cc, generic_avx2.cc, generic_avx512.cc): a register tile of R
// output voxels x FV vectors of output channels, accumulated over the taps of
// one stride phase and every input channel. Input rows come through a pointer
// table (one pointer per tap and voxel; taps that fall outside the input point
// at a zero row), so borders and phase boundaries need no branches.
#pragma once

#include <cstdint>

namespace tconv3d::generic {

struct MicroKernelArgs {
  const float* const* x_rows;   // [taps][R]: cin contiguous floats each
  const float* const* w_panels;  // [taps]: [cin][FV*VL] packed weights
  int64_t taps = 0;
  int64_t in_channels = 0;
  const float* bias = nullptr;  // FV*VL floats (zero-padded)
  float* tile = nullptr;        // out: [R][FV*VL], before the activation
};

using MicroKernelFn = void (*)(const MicroKernelArgs&);

struct MicroKernel {
  int lanes = 0;    // VL: floats per vector
  int vectors = 0;  // FV: channel vectors per voxel
  int voxels = 0;   // R: voxels per tile
  MicroKernelFn fn = nullptr;
};

// The instruction sets the generic kernel carries code for.
enum class GenericIsa { kSse2, kAvx2, kAvx512 };
const char* to_string(GenericIsa isa);

// The microkernels compiled for one instruction set: a list ended by an entry
// with fn == nullptr. Only call one the CPU can run.
const MicroKernel* microkernels(GenericIsa isa);

}  // namespace tconv3d::generic
