// Flat offsets into a dense 5-D tensor addressed as (n, d, h, w, c) whatever
// its data format.
#pragma once

#include <cstdint>

#include "tconv3d/config.hpp"

namespace tconv3d {

class TensorIndex {
 public:
  TensorIndex(const Shape5& shape, DataFormat format) {
    const bool last = format == DataFormat::kChannelsLast;
    const int64_t d = last ? shape[1] : shape[2], h = last ? shape[2] : shape[3],
                  w = last ? shape[3] : shape[4], c = last ? shape[4] : shape[1];
    if (last) {
      c_ = 1; w_ = c; h_ = w * c; d_ = h * w * c; n_ = d * h * w * c;
    } else {
      w_ = 1; h_ = w; d_ = h * w; c_ = d * h * w; n_ = c * d * h * w;
    }
  }
  int64_t operator()(int64_t n, int64_t d, int64_t h, int64_t w, int64_t c) const {
    return n * n_ + d * d_ + h * h_ + w * w_ + c * c_;
  }
  int64_t batch_stride() const { return n_; }
  int64_t channel_stride() const { return c_; }

 private:
  int64_t n_ = 0, d_ = 0, h_ = 0, w_ = 0, c_ = 0;
};

}  // namespace tconv3d
