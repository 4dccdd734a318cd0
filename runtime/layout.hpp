// Layout conversions between channels_first (NCDHW) and channels_last (NDHWC).
#pragma once

#include "tconv3d/config.hpp"

namespace tconv3d {

// shape is the NCDHW shape of `in`.
void channels_first_to_last(const Shape5& ncdhw_shape, const float* in, float* out);
// shape is the NCDHW shape of `out`.
void channels_last_to_first(const Shape5& ncdhw_shape, const float* in, float* out);

}  // namespace tconv3d
