// The reference kernels' one loop nest: every (input voxel, kernel tap) pair
// whose product lands inside the output, in a fixed order (batch, D, H, W,
// then the taps). The forward reference scatters along it; the backward
// references gather and correlate along it.
#pragma once

#include <cstdint>

#include "tconv3d/geometry.hpp"

namespace tconv3d {

struct Contribution {
  int64_t n, id, ih, iw;  // the input voxel
  int64_t od, oh, ow;     // the output voxel it reaches
  int64_t tap;            // (a * kernel_h + b) * kernel_w + c
  // Voxel counts (channels_last, channel 0) of the input and output voxels.
  int64_t input_voxel(const ConvGeometry& g) const {
    return ((n * g.axes[0].in + id) * g.axes[1].in + ih) * g.axes[2].in + iw;
  }
  int64_t output_voxel(const ConvGeometry& g) const {
    return ((n * g.axes[0].out + od) * g.axes[1].out + oh) * g.axes[2].out + ow;
  }
};

template <typename Visit>
void for_each_contribution(const ConvGeometry& g, Visit&& visit) {
  const AxisGeometry &ad = g.axes[0], &ah = g.axes[1], &aw = g.axes[2];
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < ad.in; ++id)
      for (int64_t ih = 0; ih < ah.in; ++ih)
        for (int64_t iw = 0; iw < aw.in; ++iw)
          for (int64_t a = 0; a < ad.kernel; ++a)
            for (int64_t b = 0; b < ah.kernel; ++b)
              for (int64_t c = 0; c < aw.kernel; ++c) {
                const int64_t od = id * ad.stride + a * ad.dilation - ad.crop_begin;
                const int64_t oh = ih * ah.stride + b * ah.dilation - ah.crop_begin;
                const int64_t ow = iw * aw.stride + c * aw.dilation - aw.crop_begin;
                if (od < 0 || od >= ad.out || oh < 0 || oh >= ah.out || ow < 0 || ow >= aw.out) continue;
                visit(Contribution{n, id, ih, iw, od, oh, ow, (a * ah.kernel + b) * aw.kernel + c});
              }
}

}  // namespace tconv3d
