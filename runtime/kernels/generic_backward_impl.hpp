// The generic backward kernels' loops, compiled once per instruction set:
// each generic_backward_<isa>.cc defines TCONV3D_BACKWARD_NS (a namespace of
// its own, so the copies built with different flags never mix) and includes
// this file. See generic_backward.hpp for what they compute.
#pragma once

#include <omp.h>

#include <algorithm>
#include <vector>

#include "tconv3d/geometry.hpp"

#ifndef TCONV3D_BACKWARD_NS
#error "define TCONV3D_BACKWARD_NS before including generic_backward_impl.hpp"
#endif

namespace tconv3d::TCONV3D_BACKWARD_NS {

// The input positions i (0 <= i < in) whose output o = i*stride + tap*dilation - crop
// lies in [0, out): a contiguous range [first, last).
struct Range {
  int64_t first = 0, last = 0;
};
inline Range valid_inputs(const AxisGeometry& ax, int64_t tap) {
  const int64_t shift = tap * ax.dilation - ax.crop_begin;  // o = i*stride + shift
  // o >= 0  <=>  i >= ceil(-shift / stride); o < out  <=>  i <= floor((out - 1 - shift) / stride).
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  Range r;
  r.first = std::max<int64_t>(0, -floor_div(shift, ax.stride));
  r.last = std::min<int64_t>(ax.in, floor_div(ax.out - 1 - shift, ax.stride) + 1);
  if (r.last < r.first) r.last = r.first;
  return r;
}

// The output position of input i through tap t on one axis, or -1 outside.
inline int64_t output_of(const AxisGeometry& ax, int64_t i, int64_t tap) {
  const int64_t o = i * ax.stride + tap * ax.dilation - ax.crop_begin;
  return o >= 0 && o < ax.out ? o : -1;
}

inline int thread_count(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// acc[0..n) += s * v[0..n)
inline void axpy(float* __restrict acc, float s, const float* __restrict v, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) acc[k] += s * v[k];
}

// acc[0..n) += s0 * v0 + s1 * v1 + s2 * v2 + s3 * v3, added in that order:
// four rank-1 updates per pass over acc, so acc is loaded and stored once for
// four multiply-adds.
inline void axpy4(float* __restrict acc, const float* s, const float* __restrict v0, const float* __restrict v1,
                  const float* __restrict v2, const float* __restrict v3, int64_t n) {
  const float s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) acc[k] = (((acc[k] + s0 * v0[k]) + s1 * v1[k]) + s2 * v2[k]) + s3 * v3[k];
}

inline void input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx, int threads) {
  // Not a structured binding: clang cannot capture one into the OpenMP region below.
  const AxisGeometry &ad = g.axes[0], &ah = g.axes[1], &aw = g.axes[2];
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t rows = g.batch * ad.in * ah.in;
  const int64_t row_floats = aw.in * cin;
  // The valid input range of every W tap, shared by all rows.
  std::vector<Range> w_ranges(static_cast<size_t>(aw.kernel));
  for (int64_t c = 0; c < aw.kernel; ++c) w_ranges[c] = valid_inputs(aw, c);

#pragma omp parallel num_threads(thread_count(threads))
  {
    std::vector<float> acc(static_cast<size_t>(row_floats));
#pragma omp for schedule(dynamic, 1)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t ih = row % ah.in, id = (row / ah.in) % ad.in, n = row / (ah.in * ad.in);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t a = 0; a < ad.kernel; ++a) {
        const int64_t od = output_of(ad, id, a);
        if (od < 0) continue;
        for (int64_t b = 0; b < ah.kernel; ++b) {
          const int64_t oh = output_of(ah, ih, b);
          if (oh < 0) continue;
          const float* dz_row = dz + ((n * ad.out + od) * ah.out + oh) * aw.out * cout;
          for (int64_t c = 0; c < aw.kernel; ++c) {
            const Range r = w_ranges[c];
            const float* w_tap = kernel + ((a * ah.kernel + b) * aw.kernel + c) * cout * cin;
            const int64_t shift = c * aw.dilation - aw.crop_begin;
            // Four filters' kernel rows at a time, reused across the whole input row.
            int64_t co = 0;
            for (; co + 4 <= cout; co += 4) {
              const float* w = w_tap + co * cin;
              for (int64_t iw = r.first; iw < r.last; ++iw) {
                const int64_t ow = iw * aw.stride + shift;
                axpy4(acc.data() + iw * cin, dz_row + ow * cout + co, w, w + cin, w + 2 * cin, w + 3 * cin, cin);
              }
            }
            for (; co < cout; ++co) {
              const float* w = w_tap + co * cin;
              for (int64_t iw = r.first; iw < r.last; ++iw) {
                const int64_t ow = iw * aw.stride + shift;
                axpy(acc.data() + iw * cin, dz_row[ow * cout + co], w, cin);
              }
            }
          }
        }
      }
      std::copy(acc.begin(), acc.end(), dx + row * row_floats);
    }
  }
}

inline void kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk, int threads) {
  // Not a structured binding: clang cannot capture one into the OpenMP region below.
  const AxisGeometry &ad = g.axes[0], &ah = g.axes[1], &aw = g.axes[2];
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t taps = ad.kernel * ah.kernel * aw.kernel;
  // Filters per work item: a tile of block x in_channels accumulators that
  // stays in the L1/L2 cache (two copies: the total and one row's part).
  const int64_t block = std::clamp<int64_t>(4096 / std::max<int64_t>(cin, 1), 1, cout);
  const int64_t blocks = (cout + block - 1) / block;
  const int64_t items = taps * blocks;

#pragma omp parallel num_threads(thread_count(threads))
  {
    std::vector<float> total(static_cast<size_t>(block * cin)), part(static_cast<size_t>(block * cin));
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t tap = item / blocks, co0 = (item % blocks) * block;
      const int64_t nco = std::min(block, cout - co0);
      const int64_t a = tap / (ah.kernel * aw.kernel), b = (tap / aw.kernel) % ah.kernel, c = tap % aw.kernel;
      const Range rd = valid_inputs(ad, a), rh = valid_inputs(ah, b), rw = valid_inputs(aw, c);
      std::fill(total.begin(), total.begin() + nco * cin, 0.0f);
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t id = rd.first; id < rd.last; ++id)
          for (int64_t ih = rh.first; ih < rh.last; ++ih) {
            if (rw.first >= rw.last) continue;
            const int64_t od = output_of(ad, id, a), oh = output_of(ah, ih, b);
            const float* x_row = x + ((n * ad.in + id) * ah.in + ih) * aw.in * cin;
            const float* dz_row = dz + ((n * ad.out + od) * ah.out + oh) * aw.out * cout + co0;
            std::fill(part.begin(), part.begin() + nco * cin, 0.0f);
            // Four input voxels per pass over the part (see axpy4), then the rest.
            const int64_t step = aw.stride * cout;
            int64_t iw = rw.first;
            for (; iw + 4 <= rw.last; iw += 4) {
              const int64_t ow = iw * aw.stride + c * aw.dilation - aw.crop_begin;
              const float* xv = x_row + iw * cin;
              const float* gv = dz_row + ow * cout;
              for (int64_t k = 0; k < nco; ++k) {
                const float s[4] = {gv[k], gv[k + step], gv[k + 2 * step], gv[k + 3 * step]};
                axpy4(part.data() + k * cin, s, xv, xv + cin, xv + 2 * cin, xv + 3 * cin, cin);
              }
            }
            for (; iw < rw.last; ++iw) {
              const int64_t ow = iw * aw.stride + c * aw.dilation - aw.crop_begin;
              const float* xv = x_row + iw * cin;
              const float* gv = dz_row + ow * cout;
              for (int64_t k = 0; k < nco; ++k) axpy(part.data() + k * cin, gv[k], xv, cin);
            }
            axpy(total.data(), 1.0f, part.data(), nco * cin);
          }
      std::copy(total.begin(), total.begin() + nco * cin, dk + (tap * cout + co0) * cin);
    }
  }
}

}  // namespace tconv3d::TCONV3D_BACKWARD_NS
