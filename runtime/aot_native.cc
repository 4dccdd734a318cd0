#include "runtime/aot_native.hpp"

#ifdef TCONV3D_HAVE_XBYAK

#include <algorithm>
#include <cstring>

#include "emit/x64/aot_driver_emitter.hpp"
#include "plan/row_taps.hpp"
#include "plan/weight_pack.hpp"
#include "runtime/object_writer.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

// Appends `bytes` at the next multiple of `alignment`; returns their offset.
uint64_t append_aligned(std::vector<uint8_t>& section, const void* data, size_t bytes, size_t alignment) {
  while (section.size() % alignment) section.push_back(0);
  const uint64_t offset = section.size();
  const auto* first = static_cast<const uint8_t*>(data);
  section.insert(section.end(), first, first + bytes);
  return offset;
}

const char* table_symbol(x64::AotTable table) {
  switch (table) {
    case x64::AotTable::kWeights: return "tconv3d_packed_weights";
    case x64::AotTable::kBias: return "tconv3d_packed_bias";
    case x64::AotTable::kRowIndex: return "tconv3d_row_index";
    case x64::AotTable::kRowTaps: return "tconv3d_row_taps";
  }
  return "";
}

}  // namespace

bool native_aot_supports(const codegen::KernelPlan& plan) {
  return !plan.transpose_channels_first && !plan.split_groups;
}

std::vector<uint8_t> build_native_aot_object(const codegen::KernelPlan& plan, const std::vector<uint8_t>& kernel_bytes,
                                             const float* kernel, const float* bias, const std::string& symbol) {
  if (!native_aot_supports(plan))
    throw Error("--backend", "this layer's object needs LLVM (channels_first or one kernel per channel group)");
  if (!kernel) throw Error("--kernel", "without LLVM the weights must be baked into the object: give --kernel");
  const ConvGeometry& g = plan.geometry;
  ObjectImage image;

  // Read-only data: the tables the driver and the kernel read.
  const AlignedFloats weights = pack_weights(plan, kernel);
  const AlignedFloats packed_bias = pack_bias(plan, bias);
  const RowTaps taps = build_row_taps(plan);
  const int64_t rows = g.axes[0].out * g.axes[1].out;
  std::vector<int64_t> row_index;
  for (int64_t r = 0; r < rows; ++r) {
    row_index.push_back(8 * taps.begin[static_cast<size_t>(r)]);
    row_index.push_back(taps.taps_of(r));
  }
  const int64_t no_pair[2] = {0, 0};  // keeps the table symbol inside .rodata for a layer without taps
  struct Table {
    x64::AotTable id;
    const void* data;
    size_t bytes;
  };
  const Table tables[] = {
      {x64::AotTable::kWeights, weights.data(), weights.size() * sizeof(float)},
      {x64::AotTable::kBias, packed_bias.data(), packed_bias.size() * sizeof(float)},
      {x64::AotTable::kRowIndex, row_index.data(), row_index.size() * sizeof(int64_t)},
      {x64::AotTable::kRowTaps, taps.pairs.empty() ? static_cast<const void*>(no_pair) : taps.pairs.data(),
       taps.pairs.empty() ? sizeof no_pair : taps.pairs.size() * sizeof(int64_t)}};
  for (const Table& t : tables) {
    const uint64_t at = append_aligned(image.rodata, t.data, t.bytes, 64);
    image.symbols.push_back({table_symbol(t.id), ObjectSection::kRodata, at, t.bytes, false, false});
  }

  // Text: the row kernel at 0, then the driver.
  image.text = kernel_bytes;
  image.symbols.push_back({"tconv3d_row_kernel", ObjectSection::kText, 0, kernel_bytes.size(), true, false});
  while (image.text.size() % 64) image.text.push_back(0xCC);
  const uint64_t driver_at = image.text.size();
  x64::AotDriverShape shape;
  shape.batch = g.batch;
  shape.rows = rows;
  shape.input_item_bytes = 4 * g.input_elements() / std::max<int64_t>(g.batch, 1);
  shape.output_row_bytes = 4 * g.axes[2].out * g.out_channels;
  const x64::AotDriverCode driver = x64::emit_aot_driver(shape, driver_at, 0);
  image.text.insert(image.text.end(), driver.bytes.begin(), driver.bytes.end());
  image.symbols.push_back({symbol + "_workspace_size", ObjectSection::kText, driver_at + driver.workspace_size,
                           driver.entry - driver.workspace_size, true, true});
  image.symbols.push_back({symbol, ObjectSection::kText, driver_at + driver.entry,
                           driver.bytes.size() - driver.entry, true, true});
  for (const x64::AotTableReference& ref : driver.references)
    image.relocations.push_back({driver_at + ref.offset, table_symbol(ref.table), -4});
  return write_elf_x86_64_object(image);
}

}  // namespace tconv3d

#else

#include "tconv3d/error.hpp"

namespace tconv3d {

bool native_aot_supports(const codegen::KernelPlan&) { return false; }

std::vector<uint8_t> build_native_aot_object(const codegen::KernelPlan&, const std::vector<uint8_t>&, const float*,
                                             const float*, const std::string&) {
  throw Error("--backend", "xbyak is not available in this build");
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_XBYAK
