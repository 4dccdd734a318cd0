#include "runtime/kernels/generic.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "runtime/kernels/generic_plan.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using generic::GenericIsa;
using generic::MicroKernelArgs;
using generic::Plan;
using generic::Tile;

// 64-byte aligned float storage, so packed weight vectors never split cache lines.
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(int64_t count) : storage_(size_t(count) + 16, 0.0f) {
    const auto address = reinterpret_cast<uintptr_t>(storage_.data());
    offset_ = ((64 - address % 64) % 64) / sizeof(float);
  }
  float* data() { return storage_.data() + offset_; }
  const float* data() const { return storage_.data() + offset_; }

 private:
  std::vector<float> storage_;
  size_t offset_ = 0;
};

// exp(x) for the fused activations, branch-free so the compiler vectorizes
// the loops that call it: 2^n * e^r with |r| <= ln2/2 and a degree-6 Taylor
// polynomial (relative error about 2e-7), x clamped to the normal range.
inline float vector_exp(float input) {
  // Written so a NaN input never reaches the float-to-int conversion; it
  // comes back out unchanged at the end.
  float x = input > -87.3f ? input : -87.3f;
  x = x < 88.7f ? x : 88.7f;
  constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504f + kShifter) - kShifter;
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return input == input ? p * scale : input;
}

// Applies the fused activation to `count` values and stores them. The common
// activations get loops the compiler vectorizes; the rest use the scalar
// definitions the reference uses.
void store_activated(const Activation& act, const float* values, int64_t count, float* out) {
  const float alpha = float(act.alpha);
  switch (act.kind) {
    case ActivationKind::kLinear: std::memcpy(out, values, size_t(count) * sizeof(float)); return;
    case ActivationKind::kRelu:
      if (act.alpha != 0.0 || act.threshold != 0.0 || act.max_value) break;
      for (int64_t i = 0; i < count; ++i) out[i] = values[i] > 0.0f ? values[i] : 0.0f;
      return;
    case ActivationKind::kLeakyRelu:
      for (int64_t i = 0; i < count; ++i) out[i] = values[i] >= 0.0f ? values[i] : alpha * values[i];
      return;
    case ActivationKind::kRelu6:
      for (int64_t i = 0; i < count; ++i) out[i] = std::min(std::max(values[i], 0.0f), 6.0f);
      return;
    case ActivationKind::kSigmoid:
      for (int64_t i = 0; i < count; ++i) out[i] = 1.0f / (1.0f + vector_exp(-values[i]));
      return;
    case ActivationKind::kSilu:
      for (int64_t i = 0; i < count; ++i) out[i] = values[i] / (1.0f + vector_exp(-values[i]));
      return;
    case ActivationKind::kElu:
      for (int64_t i = 0; i < count; ++i)
        out[i] = values[i] > 0.0f ? values[i] : alpha * (vector_exp(values[i]) - 1.0f);
      return;
    case ActivationKind::kTanh:
      for (int64_t i = 0; i < count; ++i) out[i] = 1.0f - 2.0f / (vector_exp(2.0f * values[i]) + 1.0f);
      return;
    default: break;
  }
  for (int64_t i = 0; i < count; ++i) out[i] = apply_elementwise(act, values[i]);
}

class GenericExecutor final : public Executor {
 public:
  GenericExecutor(const Problem& problem, const float* kernel, const float* bias, GenericIsa isa)
      : problem_(problem), plan_(generic::make_plan(problem.geometry, isa)) {
    const ConvGeometry& g = problem.geometry;
    packed_ = AlignedFloats(generic::packed_weight_count(plan_, g));
    generic::pack_weights(plan_, g, kernel, packed_.data());
    bias_ = AlignedFloats(plan_.block_channels * plan_.channel_blocks);
    if (problem.has_bias && bias) std::copy(bias, bias + g.out_channels, bias_.data());
    zeros_ = AlignedFloats(g.in_channels);
  }

  void run(const float* input, float* output, int threads) const override {
    const ConvGeometry& g = problem_.geometry;
    const int nthreads = threads > 0 ? threads : omp_get_max_threads();
    const float* x = input;
    float* y = output;
    std::vector<float> input_cl, output_cl;
    const int64_t in_spatial = g.axes[0].in * g.axes[1].in * g.axes[2].in;
    const int64_t out_spatial = g.axes[0].out * g.axes[1].out * g.axes[2].out;
    if (g.data_format == DataFormat::kChannelsFirst) {
      // The microkernel reads and writes channels contiguously; blocked
      // transposes on the way in and out cost less than strided stores
      // (the stride phases interleave along W, so those would fill each
      // output cache line in two separate passes).
      input_cl.resize(size_t(g.input_elements()));
      transpose_batched(input, input_cl.data(), g.batch, g.in_channels, in_spatial, nthreads);
      output_cl.resize(size_t(g.output_elements()));
      x = input_cl.data();
      y = output_cl.data();
    }
    const int64_t voxels = plan_.kernel.voxels;
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<const float*> rows(size_t(std::max<int64_t>(1, plan_.max_phase_taps) * voxels));
      std::vector<const float*> panels(size_t(std::max<int64_t>(1, plan_.max_phase_taps)));
      std::vector<int64_t> active(size_t(std::max<int64_t>(1, plan_.max_phase_taps)));
      AlignedFloats tile(voxels * plan_.block_channels);
#pragma omp for schedule(dynamic, 1)
      for (size_t i = 0; i < plan_.tiles.size(); ++i)
        run_tile(plan_.tiles[i], x, y, rows.data(), panels.data(), active.data(), tile.data());
    }
    if (g.data_format == DataFormat::kChannelsFirst)
      transpose_batched(output_cl.data(), output, g.batch, out_spatial, g.out_channels, nthreads);
  }

  Backend backend() const override { return Backend::kGeneric; }
  std::string isa() const override { return generic::to_string(plan_.isa); }
  std::string kernel_name() const override { return plan_.describe(); }

 private:
  void run_tile(const Tile& t, const float* x, float* y, const float** rows, const float** panels,
                int64_t* active, float* tile) const {
    const ConvGeometry& g = problem_.geometry;
    const auto& [ad, ah, aw] = g.axes;
    const int64_t cin = g.in_channels, cout = g.out_channels;
    const int64_t voxels = plan_.kernel.voxels, bc = plan_.block_channels;
    const generic::AxisPhases &pd = plan_.axes[0], &ph = plan_.axes[1], &pw = plan_.axes[2];
    const int64_t class_d = pd.output_class[size_t(t.od)];
    const generic::Phase& phase = plan_.phase(class_d, t.class_h, t.class_w);
    const std::vector<int64_t>& out_h = ph.outputs[size_t(t.class_h)];
    const std::vector<int64_t>& out_w = pw.outputs[size_t(t.class_w)];
    const int64_t taps_d = int64_t(pd.taps[size_t(class_d)].size());
    const int64_t taps_h = int64_t(ph.taps[size_t(t.class_h)].size());
    const int64_t taps_w = int64_t(pw.taps[size_t(t.class_w)].size());
    const int64_t plane_w = int64_t(out_w.size());
    const int64_t plane = int64_t(out_h.size()) * plane_w;

    int64_t oh[32], ow[32];  // voxels <= 32 (checked by the microkernel tables)
    for (int64_t block = t.block_begin; block < t.block_end; ++block) {
      const int64_t first = block * voxels;
      const int64_t count = std::min(voxels, plane - first);
      for (int64_t r = 0; r < voxels; ++r) {
        const int64_t p = first + std::min(r, count - 1);
        oh[r] = out_h[size_t(p / plane_w)];
        ow[r] = out_w[size_t(p % plane_w)];
      }
      // The row table: one input row pointer per (tap, voxel).
      bool inside = true;
      for (int64_t r = 0; r < count; ++r)
        inside = inside && ph.all_slots_inside[size_t(oh[r])] && pw.all_slots_inside[size_t(ow[r])];
      int64_t taps = 0;
      if (inside) {
        // No H/W tap of any voxel leaves the input: each row is the voxel's
        // base plus a per-tap offset (padding voxels repeat the last one).
        const std::vector<int64_t>& shift_h = ph.slot_shift[size_t(t.class_h)];
        const std::vector<int64_t>& shift_w = pw.slot_shift[size_t(t.class_w)];
        const float* base[32];
        for (int64_t r = 0; r < voxels; ++r)
          base[r] = x + ((t.n * ad.in * ah.in + ph.input_of(oh[r], 0)) * aw.in + pw.input_of(ow[r], 0)) * cin;
        for (int64_t sd = 0; sd < taps_d; ++sd) {
          const int64_t id = pd.input_of(t.od, sd);
          if (id < 0) continue;
          for (int64_t sh = 0; sh < taps_h; ++sh)
            for (int64_t sw = 0; sw < taps_w; ++sw) {
              const int64_t offset = ((id * ah.in - shift_h[size_t(sh)]) * aw.in - shift_w[size_t(sw)]) * cin;
              const float** row = rows + taps * voxels;
              for (int64_t r = 0; r < voxels; ++r) row[r] = base[r] + offset;
              active[taps++] = (sd * taps_h + sh) * taps_w + sw;
            }
        }
      } else {
        // Border blocks: taps that miss the input for some voxels read zeros;
        // taps that miss it for all of them are skipped.
        for (int64_t sd = 0; sd < taps_d; ++sd) {
          const int64_t id = pd.input_of(t.od, sd);
          if (id < 0) continue;
          for (int64_t sh = 0; sh < taps_h; ++sh)
            for (int64_t sw = 0; sw < taps_w; ++sw) {
              const float** row = rows + taps * voxels;
              bool any = false;
              for (int64_t r = 0; r < voxels; ++r) {
                const int64_t ih = ph.input_of(oh[r], sh), iw = pw.input_of(ow[r], sw);
                if (ih >= 0 && iw >= 0 && r < count) {
                  row[r] = x + (((t.n * ad.in + id) * ah.in + ih) * aw.in + iw) * cin;
                  any = true;
                } else {
                  row[r] = zeros_.data();
                }
              }
              if (any) active[taps++] = (sd * taps_h + sh) * taps_w + sw;
            }
        }
      }
      for (int64_t cb = 0; cb < plan_.channel_blocks; ++cb) {
        const float* weights = packed_.data() + phase.weight_offset + cb * phase.taps * cin * bc;
        for (int64_t i = 0; i < taps; ++i) panels[i] = weights + active[i] * cin * bc;
        MicroKernelArgs args;
        args.x_rows = rows;
        args.w_panels = panels;
        args.taps = taps;
        args.in_channels = cin;
        args.bias = bias_.data() + cb * bc;
        args.tile = tile;
        plan_.kernel.fn(args);
        const int64_t channels = std::min(bc, cout - cb * bc);
        for (int64_t r = 0; r < count; ++r) {
          const int64_t voxel = ((t.n * ad.out + t.od) * ah.out + oh[r]) * aw.out + ow[r];
          store_activated(problem_.fused_activation, tile + r * bc, channels, y + voxel * cout + cb * bc);
        }
      }
    }
  }

  Problem problem_;
  Plan plan_;
  AlignedFloats packed_;
  AlignedFloats bias_;
  AlignedFloats zeros_;
};

bool cpu_runs(GenericIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case GenericIsa::kSse2: return true;
    case GenericIsa::kAvx2: return f.avx2_fma;
    case GenericIsa::kAvx512: return f.avx512;
  }
  return false;
}

}  // namespace

generic::GenericIsa best_generic_isa() {
  if (cpu_runs(GenericIsa::kAvx512)) return GenericIsa::kAvx512;
  if (cpu_runs(GenericIsa::kAvx2)) return GenericIsa::kAvx2;
  return GenericIsa::kSse2;
}

std::unique_ptr<Executor> make_generic_executor_for(const Problem& problem, const float* kernel,
                                                    const float* bias, GenericIsa isa) {
  if (!cpu_runs(isa))
    throw Error("isa", std::string("the generic kernel's ") + generic::to_string(isa) +
                           " code cannot run on this CPU (or OS)");
  return std::make_unique<GenericExecutor>(problem, kernel, bias, isa);
}

std::unique_ptr<Executor> make_generic_executor(const Problem& problem, const float* kernel,
                                                const float* bias) {
  // TCONV3D_ISA (through resolve_isa) may narrow the choice to AVX2.
  GenericIsa isa = GenericIsa::kSse2;
  switch (resolve_isa(Isa::kAuto)) {
    case Isa::kAvx512: isa = GenericIsa::kAvx512; break;
    case Isa::kAvx2: isa = GenericIsa::kAvx2; break;
    case Isa::kAuto: isa = GenericIsa::kSse2; break;
  }
  return make_generic_executor_for(problem, kernel, bias, isa);
}

}  // namespace tconv3d
