#include "tools/support/timing.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

namespace tconv3d {

TimingResult time_repeated(const std::function<void()>& body, double min_seconds, int min_repetitions) {
  using clock = std::chrono::steady_clock;
  body();  // warm-up: page faults, caches, thread pool start
  std::vector<double> samples;
  const auto start = clock::now();
  while (static_cast<int>(samples.size()) < min_repetitions ||
         std::chrono::duration<double>(clock::now() - start).count() < min_seconds) {
    const auto t0 = clock::now();
    body();
    samples.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (samples.size() >= 10000) break;
  }
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples.front(), static_cast<int>(samples.size())};
}

}  // namespace tconv3d
