#include "tools/support/accuracy.hpp"

#include <algorithm>
#include <cmath>

namespace tconv3d {

double scaled_max_error(const float* actual, const float* expected, size_t count) {
  double scale = 1.0, error = 0.0;
  for (size_t i = 0; i < count; ++i) {
    scale = std::max(scale, std::fabs(double(expected[i])));
    const double diff = std::fabs(double(actual[i]) - double(expected[i]));
    if (std::isnan(diff)) return INFINITY;
    error = std::max(error, diff);
  }
  return error / scale;
}

}  // namespace tconv3d
