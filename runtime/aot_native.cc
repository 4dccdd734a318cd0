#include "runtime/aot_native.hpp"

#include "tconv3d/error.hpp"

#ifdef TCONV3D_HAVE_XBYAK

#include <algorithm>

#include "emit/x64/aot_driver_emitter.hpp"
#include "emit/x64/tconv_emitter.hpp"
#include "plan/row_taps.hpp"
#include "plan/weight_pack.hpp"
#include "runtime/object_writer.hpp"

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
    case x64::AotTable::kWeightRuns: return "tconv3d_weight_runs";
    case x64::AotTable::kBiasRuns: return "tconv3d_bias_runs";
  }
  return "";
}

void add_table(ObjectImage& image, x64::AotTable table, const void* data, size_t bytes) {
  static const int64_t kEmpty[2] = {0, 0};  // keeps an empty table's symbol inside .rodata
  if (bytes == 0) {
    data = kEmpty;
    bytes = sizeof kEmpty;
  }
  const uint64_t at = append_aligned(image.rodata, data, bytes, 64);
  image.symbols.push_back({table_symbol(table), ObjectSection::kRodata, at, bytes, false, false});
}

std::vector<int64_t> flatten(const std::vector<PackRun>& runs) {
  std::vector<int64_t> flat;
  for (const PackRun& r : runs) flat.insert(flat.end(), {r.dst, r.src, r.count});
  return flat;
}

int64_t aligned_bytes(int64_t floats) { return (4 * floats + 63) / 64 * 64; }

// Workspace: [channels_last input][channels_last output] for channels_first,
// [pre-activation output] for glu, [sorted row] for sparsemax.
void lay_out_workspace(const codegen::KernelPlan& plan, const Activation& act, x64::AotDriverShape& s) {
  const ConvGeometry& g = plan.geometry;
  int64_t end = 0;
  if (plan.transpose_channels_first) {
    s.channels_first = true;
    s.in_channels = g.in_channels;
    s.in_spatial = g.axes[0].in * g.axes[1].in * g.axes[2].in;
    s.out_channels = g.out_channels;
    s.out_spatial = g.axes[0].out * g.axes[1].out * g.axes[2].out;
    s.input_cl_offset = end;
    end += aligned_bytes(g.input_elements());
    s.output_cl_offset = end;
    end += aligned_bytes(g.output_elements());
  }
  if (!act.is_elementwise()) {
    s.activation.kind = act.kind;
    s.activation.length = g.output_shape()[4];
    s.activation.rows = s.activation.length ? g.output_elements() / s.activation.length : 0;
    if (act.kind == ActivationKind::kGlu) {
      s.pre_activation_offset = end;
      end += aligned_bytes(g.output_elements());
    }
    if (act.kind == ActivationKind::kSparsemax) {
      s.activation.scratch_offset = end;
      end += aligned_bytes(2 * s.activation.length);
    }
  }
  s.workspace_bytes = end;
}

}  // namespace

NativeAotObject build_native_aot_object(const codegen::KernelPlan& plan, const Activation& axis_activation,
                                        const float* kernel, const float* bias, const std::string& symbol) {
  const ConvGeometry& g = plan.geometry;
  ObjectImage image;
  x64::AotDriverShape shape;
  shape.batch = g.batch;
  shape.rows = g.axes[0].out * g.axes[1].out;
  shape.input_item_bytes = 4 * g.input_elements() / std::max<int64_t>(g.batch, 1);
  shape.output_row_bytes = 4 * g.axes[2].out * g.out_channels;
  lay_out_workspace(plan, axis_activation, shape);

  // Read-only data: the weights or the runs that pack them, and the row tables.
  shape.baked_weights = kernel != nullptr;
  if (kernel) {
    const AlignedFloats weights = pack_weights(plan, kernel);
    const AlignedFloats packed_bias = pack_bias(plan, plan.has_bias ? bias : nullptr);
    add_table(image, x64::AotTable::kWeights, weights.data(), weights.size() * sizeof(float));
    add_table(image, x64::AotTable::kBias, packed_bias.data(), packed_bias.size() * sizeof(float));
  } else {
    const PackRuns runs = packing_runs(plan);
    const std::vector<int64_t> weight_runs = flatten(runs.weights), bias_runs = flatten(runs.bias);
    add_table(image, x64::AotTable::kWeightRuns, weight_runs.data(), weight_runs.size() * sizeof(int64_t));
    add_table(image, x64::AotTable::kBiasRuns, bias_runs.data(), bias_runs.size() * sizeof(int64_t));
    shape.weight_runs = static_cast<int64_t>(runs.weights.size());
    shape.bias_runs = static_cast<int64_t>(runs.bias.size());
    shape.weight_run_stride = runs.weight_stride;
    shape.packed_weight_floats = plan.packed_weight_count();
    shape.packed_floats = plan.packed_weight_count() + plan.padded_out_channels();
  }
  const RowTaps taps = build_row_taps(plan);
  std::vector<int64_t> row_index;
  for (int64_t r = 0; r < shape.rows; ++r) {
    row_index.push_back(8 * taps.begin[static_cast<size_t>(r)]);
    row_index.push_back(taps.taps_of(r));
  }
  add_table(image, x64::AotTable::kRowIndex, row_index.data(), row_index.size() * sizeof(int64_t));
  add_table(image, x64::AotTable::kRowTaps, taps.pairs.data(), taps.pairs.size() * sizeof(int64_t));

  // Text: the row kernels (the JIT's: one per channel group when split), then the driver.
  const int kernels = plan.split_groups ? plan.oc_groups : 1;
  for (int k = 0; k < kernels; ++k) {
    const std::vector<uint8_t> bytes = x64::emit_tconv_kernel(plan.split_groups ? plan.for_group(k) : plan).bytes;
    while (image.text.size() % 64) image.text.push_back(0xCC);
    shape.kernel_offsets.push_back(image.text.size());
    image.symbols.push_back({"tconv3d_row_kernel_" + std::to_string(k), ObjectSection::kText, image.text.size(),
                             bytes.size(), true, false});
    image.text.insert(image.text.end(), bytes.begin(), bytes.end());
  }
  while (image.text.size() % 64) image.text.push_back(0xCC);
  const uint64_t driver_at = image.text.size();
  const x64::AotDriverCode driver = x64::emit_aot_driver(shape, driver_at);
  image.text.insert(image.text.end(), driver.bytes.begin(), driver.bytes.end());
  auto exported = [&](const std::string& name, uint64_t begin, uint64_t end) {
    image.symbols.push_back({name, ObjectSection::kText, driver_at + begin, end - begin, true, true});
  };
  exported(symbol + "_workspace_size", driver.workspace_size, kernel ? driver.entry : driver.packed_size);
  exported(symbol, driver.entry, driver.bytes.size());
  if (!kernel) {
    exported(symbol + "_packed_size", driver.packed_size, driver.pack);
    exported(symbol + "_pack", driver.pack, driver.entry);
  }
  for (const x64::AotTableReference& ref : driver.references)
    image.relocations.push_back({driver_at + ref.offset, table_symbol(ref.table), -4});
  NativeAotObject object;
  object.bytes = write_elf_x86_64_object(image);
  object.workspace_bytes = shape.workspace_bytes;
  object.packed_floats = shape.packed_floats;
  return object;
}

}  // namespace tconv3d

#else

namespace tconv3d {

NativeAotObject build_native_aot_object(const codegen::KernelPlan&, const Activation&, const float*, const float*,
                                        const std::string&) {
  throw Error("--backend", "xbyak is not available in this build");
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_XBYAK
