#include "runtime/kernels/bf16_kernel_gradient.hpp"

#include <omp.h>

#include <algorithm>

#include "plan/kernel_name.hpp"
#include "runtime/kernels/kernel_gradient_pieces.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

// A 32-bit bf16 pair: `first` in the low half (vdpbf16ps's even element).
inline uint32_t pair(uint16_t first, uint16_t second) { return uint32_t(first) | (uint32_t(second) << 16); }

}  // namespace

Bf16KernelGradient::Bf16KernelGradient(const Problem& problem, Backend backend) {
  if (backend != Backend::kXbyak && backend != Backend::kLlvm)
    throw Error("backend", "the bf16 kernel gradient runs on xbyak or llvm, not " + to_string(backend));
  plan_ = codegen::make_kernel_gradient_plan(problem, Isa::kAvx512, DataType::kBfloat16);
  name_ = codegen::kernel_gradient_name(plan_);
  code_ = compile_kernel_gradient(plan_, backend, name_);
  kernel_ = code_->function<codegen::KernelGradientFunction>();
  const ConvGeometry& g = plan_.geometry;
  for (int64_t kd = 0; kd < g.axes[0].kernel; ++kd)
    for (int64_t kh = 0; kh < g.axes[1].kernel; ++kh)
      pairs_.push_back(codegen::kernel_gradient_row_pairs(plan_, kd, kh));
  x_rows_ = g.batch * g.axes[0].in * g.axes[1].in;
  dz_rows_ = g.batch * g.axes[0].out * g.axes[1].out;
}

// x pairs: xp[row, j, ci] = (x[row, 2j, ci], x[row, 2j+1, ci], 0 past the row).
// dz pairs: dzp[row, stride + ow, co] = (dz[row, ow, co], dz[row, ow + stride, co])
// for ow in [-stride, out), 0 for a voxel outside [0, out): the zeros make
// the partner of a voxel whose tap falls outside the row add nothing.
void Bf16KernelGradient::repack(const uint16_t* x, const uint16_t* dz, uint32_t* xp, uint32_t* dzp, int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const ConvGeometry& g = plan_.geometry;
  const int64_t w_in = g.axes[2].in, w_out = g.axes[2].out, s = g.axes[2].stride;
  const int64_t ci = g.in_channels, co = g.out_channels, steps = plan_.w_steps();
  const int64_t x_rows = x_rows_, dz_rows = dz_rows_;
#pragma omp parallel num_threads(threads) if (x_rows * w_in * ci + dz_rows * w_out * co > 65536)
  {
#pragma omp for schedule(static) nowait
    for (int64_t row = 0; row < x_rows; ++row) {
      const uint16_t* in = x + row * w_in * ci;
      uint32_t* out = xp + row * steps * ci;
      for (int64_t j = 0; j < w_in / 2; ++j) {
        const uint16_t* a = in + 2 * j * ci;
        const uint16_t* b = a + ci;
        uint32_t* o = out + j * ci;
        for (int64_t c = 0; c < ci; ++c) o[c] = pair(a[c], b[c]);
      }
      if (w_in % 2) {
        const uint16_t* a = in + (w_in - 1) * ci;
        uint32_t* o = out + (steps - 1) * ci;
        for (int64_t c = 0; c < ci; ++c) o[c] = pair(a[c], 0);
      }
    }
#pragma omp for schedule(static)
    for (int64_t row = 0; row < dz_rows; ++row) {
      // Three runs of a row, each one flat loop over (voxel, channel): the
      // pairs whose first voxel is before the row, those with both voxels in
      // it, and those whose second voxel is past it.
      const uint16_t* in = dz + row * w_out * co;
      uint32_t* out = dzp + row * (s + w_out) * co;  // its entry s*co is ow = 0
      const int64_t lead = std::min(s, w_out) * co, both = std::max<int64_t>(0, w_out - s) * co;
      for (int64_t k = 0; k < lead; ++k) out[k] = pair(0, in[k]);
      std::fill(out + lead, out + s * co, 0u);
      uint32_t* at_zero = out + s * co;
      const int64_t later = s * co;
      for (int64_t k = 0; k < both; ++k) at_zero[k] = pair(in[k], in[k + later]);
      for (int64_t k = both; k < w_out * co; ++k) at_zero[k] = pair(in[k], 0);
    }
  }
}

void Bf16KernelGradient::compute(const uint32_t* xp, const uint32_t* dzp, float* dk, int threads) const {
  const int64_t x_row = plan_.x_row_bytes(), dz_row = plan_.dz_row_bytes(), dz_origin = plan_.dz_row_origin();
  const char* x_bytes = reinterpret_cast<const char*>(xp);
  const char* dz_bytes = reinterpret_cast<const char*>(dzp);
  // The kernel reads the arrays as 32-bit bf16 pairs.
  run_kernel_gradient_pieces(plan_, pairs_, kernel_, reinterpret_cast<const float*>(xp),
                             reinterpret_cast<const float*>(dzp), dk, threads,
                             [&](const codegen::KernelGradientArgs& args) {
                               // The rows' lines in address order ahead of the first tile (see
                               // GeneratedKernelGradient::prefetch_rows).
                               for (int64_t q = 0; q < args.pair_count; ++q) {
                                 for (int64_t at = 0; at < x_row; at += 64)
                                   __builtin_prefetch(x_bytes + args.pairs[2 * q] + at, 0, 2);
                                 const char* d = dz_bytes + args.pairs[2 * q + 1] - dz_origin;
                                 for (int64_t at = 0; at < dz_row; at += 64) __builtin_prefetch(d + at, 0, 2);
                               }
                             });
}

void Bf16KernelGradient::run(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const size_t x_count = static_cast<size_t>(x_pair_elements());
  const size_t dz_count = static_cast<size_t>(dz_pair_elements());
  // The pair arrays are kept between calls (fresh pages cost a fault each);
  // a concurrent caller that finds them taken uses its own.
  std::unique_lock<std::mutex> lock(scratch_mutex_, std::try_to_lock);
  std::unique_ptr<uint32_t[]> own_x, own_dz;
  uint32_t* xp = nullptr;
  uint32_t* dzp = nullptr;
  if (lock.owns_lock()) {
    if (!x_scratch_) {
      x_scratch_.reset(new uint32_t[x_count]);
      dz_scratch_.reset(new uint32_t[dz_count]);
    }
    xp = x_scratch_.get();
    dzp = dz_scratch_.get();
  } else {
    own_x.reset(new uint32_t[x_count]);
    own_dz.reset(new uint32_t[dz_count]);
    xp = own_x.get();
    dzp = own_dz.get();
  }
  repack(x, dz, xp, dzp, threads);
  compute(xp, dzp, dk, threads);
}

}  // namespace tconv3d
