// The kernel-gradient plan: what the code generator writes for one layer's
// dK kernel. A pure function of the Problem and the ISA.
//
//   dK[kd, kh, kw, co, ci] = sum over n, id, ih, iw of x[n, id, ih, iw, ci] * dz[n, od, oh, ow, co]
//   with, per axis, o = i*stride + k*dilation - crop_begin inside [0, out).
//
// dK's last axis, ci, is the input's channel axis, so the register tile holds
// dK rows (kw, co) x ci vectors: each step loads ci_vectors vectors of x at
// one input voxel and broadcasts one dz value per tile row. A tile's rows are
// either up to `rows` output channels of one kw, or, with fewer output
// channels than that, every output channel of several consecutive kw (a
// 4-filter head would otherwise keep only 4 rows busy).
//
// What runs: one call per (D tap, H tap) pair, run of (x row, dz row) pairs
// (from row_pairs(), passed at run time like the forward's row taps), range
// of row tiles and range of ci blocks. For each tile and ci block, in that
// order, the call loads (or zeroes) the accumulators from dK, runs every pair
// over every W voxel (the W taps, with the borders, resolved at generation:
// voxel iw of tap kw reads dz at ow = iw*stride + kw*dilation - crop_begin),
// and stores them back. A dK element's terms are therefore summed in one
// fixed order (pairs in order, then iw) whichever calls cover it.
//
// The bf16 variant (dtype kBfloat16, AVX-512 with AVX512_BF16): the same
// tiles, blocks, calls and pairs, but a W step is a PAIR of input voxels
// (iw = 2j, 2j+1), the reduction pair of vdpbf16ps. The kernel reads repacked
// copies the runtime makes per call (see runtime/kernels/bf16_kernel_gradient.hpp):
//   x pairs:  xp[row, j, ci]  = (x[row, 2j, ci], x[row, 2j+1, ci] or 0 past W)
//   dz pairs: dzp[row, ow, co] = (dz[row, ow, co], dz[row, ow + stride, co]),
//             ow in [-stride, out), a value outside [0, out) read as 0
// so voxel pair j at tap kw reads the dz pair at ow = 2j*stride + kw*dilation
// - crop_begin, one 32-bit broadcast, against 16 ci lanes of x pairs: each
// float32 lane adds x[2j]*dz[ow] + x[2j+1]*dz[ow+stride]. A W segment then
// counts voxel pairs, and a tap is valid for a pair when it is for either voxel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/problem.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d::codegen {

// The one argument of a generated dK kernel: void kernel(const KernelGradientArgs*).
struct KernelGradientArgs {
  const float* x;        // the whole channels_last input (bf16: the x pairs, read as 32-bit pairs)
  const float* dz;       // the whole channels_last output gradient (bf16: the dz pairs)
  const int64_t* pairs;  // pair_count pairs: (x row byte offset, dz row byte offset)
  int64_t pair_count;
  float* dk;           // dK block of this (kd, kh): &dK[kd, kh, 0, 0, 0]
  int64_t accumulate;  // 0: the accumulators start from zero, else from dK
  int64_t tile_begin;  // row tiles [tile_begin, tile_end)
  int64_t tile_end;
  int64_t block_begin;  // ci blocks [block_begin, block_end)
  int64_t block_end;
};

using KernelGradientFunction = void (*)(const KernelGradientArgs*);

namespace gradient_args_offset {
inline constexpr int32_t kX = offsetof(KernelGradientArgs, x);
inline constexpr int32_t kDz = offsetof(KernelGradientArgs, dz);
inline constexpr int32_t kPairs = offsetof(KernelGradientArgs, pairs);
inline constexpr int32_t kPairCount = offsetof(KernelGradientArgs, pair_count);
inline constexpr int32_t kDk = offsetof(KernelGradientArgs, dk);
inline constexpr int32_t kAccumulate = offsetof(KernelGradientArgs, accumulate);
inline constexpr int32_t kTileBegin = offsetof(KernelGradientArgs, tile_begin);
inline constexpr int32_t kTileEnd = offsetof(KernelGradientArgs, tile_end);
inline constexpr int32_t kBlockBegin = offsetof(KernelGradientArgs, block_begin);
inline constexpr int32_t kBlockEnd = offsetof(KernelGradientArgs, block_end);
}  // namespace gradient_args_offset

// Row tiles that share their code: `count` consecutive tiles, the i-th of
// which holds rows (kw, co) for kw in [kw_first, kw_first + kw_count) and co
// in [co_first + i*co_count, co_first + (i+1)*co_count).
struct RowTileClass {
  int first_tile = 0;  // index of the class's first tile
  int count = 0;
  int kw_first = 0;
  int kw_count = 1;
  int co_first = 0;
  int co_count = 0;
  int rows() const { return kw_count * co_count; }
};

// Consecutive W voxels of a tile class that see the same set of valid
// (kw, co) rows: either every row (interior) or a border subset.
struct KgWSegment {
  int64_t first = 0;  // first input voxel iw
  int64_t count = 0;
  std::vector<bool> kw_valid;  // per kw of the class, from kw_first
};

struct KernelGradientPlan {
  Isa isa = Isa::kAvx2;
  DataType dtype = DataType::kFloat32;  // kBfloat16: W steps are voxel pairs (see above)
  int lanes = 8;
  int vector_registers = 16;
  ConvGeometry geometry;

  bool bf16() const { return dtype == DataType::kBfloat16; }
  // W steps of an x row: input voxels, or voxel pairs for bf16.
  int64_t w_steps() const;
  // Bytes of one row of the x and dz arrays the kernel reads (bf16: the
  // repacked pair rows), and where in a dz row its voxel ow = 0 starts.
  int64_t x_row_bytes() const;
  int64_t dz_row_bytes() const;
  int64_t dz_row_origin() const;

  int rows = 0;                // most tile rows (broadcast dz values)
  int ci_vectors = 0;          // vectors of a full ci block
  int ci_blocks = 0;           // ceil(Ci / (ci_vectors * lanes))
  int uniform_blocks = 0;      // blocks of ci_vectors full vectors
  int tail_block_vectors = 0;  // vectors of the last block when it is not uniform (0: none)
  int tail_lanes = 0;          // valid lanes of the last vector of the last block; 0: all
  int w_unroll = 1;            // W voxels per interior loop iteration

  // Pairs per call: their rows of x and dz are read again for every tile
  // and stay in L2, or in L1 for small tiles (see make_kernel_gradient_plan).
  // The executor passes at most this many; any count computes the same.
  int64_t pairs_per_call = 1;

  std::vector<RowTileClass> classes;
  int tiles = 0;                                    // over all classes
  std::vector<std::vector<KgWSegment>> w_segments;  // per class

  // Cost of one (tile range, block range) of one pair in FMA vector instructions.
  int64_t fmas_per_pair(int tile_begin, int tile_end, int block_begin, int block_end) const;

  std::string to_string() const;
  std::string cache_key() const;
};

// isa must be kAvx2 or kAvx512; dtype kFloat32, or kBfloat16 with kAvx512
// (problem.dtype is not read: the float32 kernel also serves widened bf16).
// Throws tconv3d::Error for shapes the generated code cannot address
// (offsets beyond 32-bit displacements).
KernelGradientPlan make_kernel_gradient_plan(const Problem& problem, Isa isa,
                                             DataType dtype = DataType::kFloat32);

// The (x row, dz row) pairs of one (D tap, H tap): byte offsets of the row
// (n, id, ih, 0, 0) in x and (n, od, oh, 0, 0) in dz, for every n, id, ih
// whose od and oh fall inside the output, in (n, id, ih) order.
std::vector<int64_t> kernel_gradient_row_pairs(const ConvGeometry& geometry, int64_t kd, int64_t kh);
// The same pairs as offsets into the arrays the plan's kernel reads (bf16:
// the repacked pair rows, at their voxel ow = 0 for dz).
std::vector<int64_t> kernel_gradient_row_pairs(const KernelGradientPlan& plan, int64_t kd, int64_t kh);

}  // namespace tconv3d::codegen
