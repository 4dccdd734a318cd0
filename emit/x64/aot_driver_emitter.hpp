// The driver of an ahead-of-time object built without LLVM: machine code
// that runs a whole layer on the calling thread. It walks every output row
// of every batch item, once per row kernel (one per channel group when the
// plan splits them, like the JIT's row executor), filling a KernelArgs
// (core/kernel_args.hpp) on its stack and calling the kernel; around the
// rows it transposes channels_first data through the workspace and applies
// an axis activation (emit/x64/aot_axis_activation.hpp). With run-time
// weights the same code holds NAME_pack, which applies the plan's packing
// runs (plan/weight_pack.hpp). Tables (packed weights, bias, row index,
// row-tap pairs, packing runs) live in the object's read-only data, reached
// through PC-relative fields that the object writer turns into relocations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"

namespace tconv3d::x64 {

// The read-only tables a driver refers to.
enum class AotTable { kWeights, kBias, kRowIndex, kRowTaps, kWeightRuns, kBiasRuns };

// A 32-bit PC-relative field in the driver bytes that must point at a table.
struct AotTableReference {
  uint64_t offset = 0;  // of the field, in the driver bytes
  AotTable table = AotTable::kWeights;
};

// softmax, log_softmax, glu or sparsemax over the last axis of the output in
// its final layout (W for channels_first), as core/activation.cc computes it.
struct AotAxisActivation {
  ActivationKind kind = ActivationKind::kLinear;  // linear: none
  int64_t rows = 0;
  int64_t length = 0;          // of a row before the activation (glu halves it)
  int64_t scratch_offset = 0;  // workspace bytes: sparsemax's sorted row, `length` doubles
};

struct AotDriverShape {
  int64_t batch = 0;
  int64_t rows = 0;              // output rows per batch item: out_d * out_h
  int64_t input_item_bytes = 0;  // one batch item of the (channels_last) input
  int64_t output_row_bytes = 0;  // one (channels_last) output row: out_w * filters floats
  std::vector<uint64_t> kernel_offsets;  // .text offsets of the row kernels, run one after the other

  // Weights baked into the tables, or passed by the caller (packed by NAME_pack).
  bool baked_weights = true;
  int64_t packed_weight_floats = 0;  // run-time weights: the bias follows the weights in `packed`
  int64_t packed_floats = 0;         // run-time weights: NAME_packed_size()
  int64_t weight_runs = 0;           // run-time weights: entries of the packing run tables
  int64_t bias_runs = 0;
  int64_t weight_run_stride = 0;     // floats between consecutive source elements (in_channels)

  int64_t workspace_bytes = 0;  // NAME_workspace_size()
  // channels_first: the input goes NCDHW -> NDHWC into the workspace, the rows
  // write a channels_last output there, and it goes back NDHWC -> NCDHW.
  bool channels_first = false;
  int64_t in_channels = 0, in_spatial = 0, out_channels = 0, out_spatial = 0;
  int64_t input_cl_offset = 0, output_cl_offset = 0;  // workspace bytes
  // glu writes half a row: the rows' result goes to the workspace first.
  int64_t pre_activation_offset = 0;
  AotAxisActivation activation;
};

struct AotDriverCode {
  std::vector<uint8_t> bytes;
  uint64_t entry = 0;           // baked: void NAME(const float* input, float* output, void* workspace)
                                // run-time: void NAME(const float* input, float* output, const float* packed, void* workspace)
  uint64_t workspace_size = 0;  // size_t NAME_workspace_size(void)
  uint64_t packed_size = 0;     // run-time weights: size_t NAME_packed_size(void)
  uint64_t pack = 0;            // run-time weights: void NAME_pack(const float* kernel, const float* bias, float* packed)
  std::vector<AotTableReference> references;
};

// The driver, to be placed at `text_offset` in .text. Throws tconv3d::Error.
AotDriverCode emit_aot_driver(const AotDriverShape& shape, uint64_t text_offset);

}  // namespace tconv3d::x64
