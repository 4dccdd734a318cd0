// The driver of an ahead-of-time object whose row kernel comes from Xbyak and
// that is built without LLVM: machine code that walks every output row of
// every batch item on the calling thread, filling a KernelArgs
// (core/kernel_args.hpp) on its stack and calling the row kernel. Its
// tables (packed weights, bias, row index, row-tap pairs) live in the
// object's read-only data, reached through PC-relative fields that the
// object writer turns into relocations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv3d::x64 {

// What the driver needs besides the tables: channels_last layout, weights baked.
struct AotDriverShape {
  int64_t batch = 0;
  int64_t rows = 0;             // output rows per batch item: out_d * out_h
  int64_t input_item_bytes = 0;  // one batch item of the input
  int64_t output_row_bytes = 0;  // one output row (out_w * filters floats)
};

// The read-only tables a driver refers to.
enum class AotTable { kWeights, kBias, kRowIndex, kRowTaps };

// A 32-bit PC-relative field in the driver bytes that must point at a table.
struct AotTableReference {
  uint64_t offset = 0;  // of the field, in the driver bytes
  AotTable table = AotTable::kWeights;
};

struct AotDriverCode {
  std::vector<uint8_t> bytes;
  uint64_t entry = 0;            // void NAME(const float* input, float* output, void* workspace)
  uint64_t workspace_size = 0;   // size_t NAME_workspace_size(void): returns 0
  std::vector<AotTableReference> references;
};

// The driver, to be placed at `text_offset` in .text, calling the row kernel
// at .text offset `kernel_offset`. The row index table holds, per row
// (od * out_h + oh), the byte offset of its first pair in the row-tap table
// and its tap count, as two int64.
AotDriverCode emit_aot_driver(const AotDriverShape& shape, uint64_t text_offset, uint64_t kernel_offset);

}  // namespace tconv3d::x64
