#include "bench/side_by_side.hpp"

#include <cmath>

namespace tconv3d::bench {

void set_rate_counters(benchmark::State& state, double flops, double peak) {
  const double gflop = flops * double(state.iterations()) / 1e9;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  if (peak > 0) state.counters["%peak"] = benchmark::Counter(100.0 * gflop / peak, benchmark::Counter::kIsRate);
}

double fma_peak(const FmaPeaks& peaks, bool zmm, int threads) {
  const auto& table = zmm ? peaks.zmm : peaks.ymm;
  const auto found = table.find(threads);
  return found == table.end() ? NAN : found->second;
}

void register_side_by_side(LayerData* data, const std::vector<int>& threads, const std::vector<std::string>& impls,
                           CollectingReporter& reporter, SideBySideFunction function) {
  const std::string& layer = data->entry.name;
  for (int t : threads) {
    for (const std::string& impl : impls) {
      const MeasurementKey key{layer, impl, t};
      const std::string name = layer + "/" + impl + "/threads:" + std::to_string(t);
      reporter.name(name, key);
      timed(benchmark::RegisterBenchmark(name.c_str(), function, data, key))->Unit(benchmark::kMillisecond);
    }
  }
}

void Geomean::add(double ratio) {
  log_sum_ += std::log(ratio);
  ++count_;
}

double Geomean::value() const { return count_ ? std::exp(log_sum_ / count_) : NAN; }

void skip_above(ImplementationInfo& info, double limit, const char* reference) {
  if (info.max_error <= limit) return;
  char text[96];
  std::snprintf(text, sizeof text, "output differs from %s: max error %.3g", reference, info.max_error);
  info.skipped = text;
}

std::string max_error_text(const ImplementationInfo& info) {
  char text[48];
  std::snprintf(text, sizeof text, "max error %.2e  ", info.max_error);
  return text + info.label;
}

std::string ratio_text(double a, double b) {
  if (std::isnan(a) || std::isnan(b) || b <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", a / b);
  return text;
}

}  // namespace tconv3d::bench
