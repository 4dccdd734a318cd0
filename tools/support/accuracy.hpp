// How far an implementation's output is from the reference, one measure for
// the tests, the demo and the benchmark.
#pragma once

#include <cstddef>

namespace tconv3d {

// max |actual - expected| over the output's scale, max(1, max |expected|), so
// outputs near zero (a sigmoid's) are not held to a tighter bound than float
// gives. Infinity when any difference is NaN.
double scaled_max_error(const float* actual, const float* expected, size_t count);

}  // namespace tconv3d
