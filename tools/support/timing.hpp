// Wall-clock timing of a layer: warm-up, then repeated runs until a minimum
// time and count, reporting the median (robust to the noise of shared machines).
#pragma once

#include <functional>

namespace tconv3d {

struct TimingResult {
  double median_ms = 0;
  double min_ms = 0;
  int repetitions = 0;
};

TimingResult time_repeated(const std::function<void()>& body, double min_seconds, int min_repetitions);

}  // namespace tconv3d
