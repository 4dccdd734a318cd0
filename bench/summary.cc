#include "bench/summary.hpp"

#include "bench/side_by_side.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace tconv3d::bench {

bool cpu_time_mode() {
  static const bool on = [] {
    const char* text = std::getenv("TCONV3D_BENCH_CPU_TIME");
    return text && std::string(text) == "1";
  }();
  return on;
}

benchmark::internal::Benchmark* timed(benchmark::internal::Benchmark* benchmark) {
  benchmark->UseRealTime();
  if (cpu_time_mode()) benchmark->MeasureProcessCPUTime();
  return benchmark;
}

void CollectingReporter::ReportRuns(const std::vector<Run>& runs) {
  display_->ReportRuns(runs);
  for (const Run& run : runs) {
    if (run.error_occurred || run.iterations <= 0) continue;
    const auto key = keys_.find(run.run_name.function_name);
    if (key == keys_.end()) continue;
    const bool cpu = cpu_time_mode() && key->second.impl != "reference";
    const double seconds = (cpu ? run.cpu_accumulated_time : run.real_accumulated_time) / double(run.iterations);
    if (run.run_type == Run::RT_Iteration) {
      seconds_[key->second].push_back(seconds);
    } else if (run.aggregate_name == "median") {
      median_aggregate_[key->second] = seconds;
    }
  }
}

std::map<MeasurementKey, std::vector<double>> CollectingReporter::seconds() const {
  std::map<MeasurementKey, std::vector<double>> result = seconds_;
  for (const auto& [key, value] : median_aggregate_)
    if (!result.count(key)) result[key] = {value};
  return result;
}

namespace {

double median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// Median GFLOP/s, or NaN when the implementation did not run.
double gflops_of(const SummaryInput& in, const MeasurementKey& key) {
  const double seconds = median_seconds(in, key);
  return std::isnan(seconds) ? NAN : in.flops.at(key.layer) / seconds / 1e9;
}

double peak_for(const SummaryInput& in, const MeasurementKey& key) {
  const auto info = in.info.find(key);
  return fma_peak(in.peaks, info != in.info.end() && info->second.uses_zmm, key.threads);
}

// GFLOP/s as counted (every input x kernel product), and the share of the
// peak that the FMAs reaching the output (gflops * useful) keep busy.
std::string cell(double gflops, double peak, double useful = 1.0) {
  char text[48];
  if (std::isnan(gflops)) return "-";
  if (std::isnan(peak)) {
    std::snprintf(text, sizeof text, "%.1f", gflops);
  } else {
    std::snprintf(text, sizeof text, "%.1f (%2.0f%%)", gflops, 100.0 * gflops * useful / peak);
  }
  return text;
}

}  // namespace

double median_seconds(const SummaryInput& in, const MeasurementKey& key) {
  const auto found = in.seconds.find(key);
  return found == in.seconds.end() ? NAN : median(found->second);
}

double useful_share(const SummaryInput& in, const std::string& layer) {
  const auto share = in.useful_share.find(layer);
  return share == in.useful_share.end() ? 1.0 : share->second;
}

void print_summary(std::FILE* out, const SummaryInput& in) {
  std::fprintf(out, "\n== tconv3d summary: median GFLOP/s over interleaved repetitions (%% of measured FMA peak) ==\n");
  std::fprintf(out, "(GFLOP/s counts 2*N*D*H*W*Cin*filters*kd*kh*kw; %% of peak counts only the FMAs that reach the output,\n"
                    " which 'same' padding makes fewer: the per-layer share is printed after the table)\n");
  std::fprintf(out, "FMA peak (GFLOP/s):");
  for (const auto& [t, v] : in.peaks.ymm) std::fprintf(out, " ymm %dt %.1f;", t, v);
  for (const auto& [t, v] : in.peaks.zmm) std::fprintf(out, " zmm %dt %.1f;", t, v);
  std::fprintf(out, "\n(generic/xbyak rated against the peak of the vectors they use; oneDNN against the peak of the ISA it dispatches to)\n\n");
  std::fprintf(out, "%-16s %2s %9s %16s %16s %16s %9s %9s\n", "layer", "t", "reference", "generic", "xbyak", "onednn",
               "xb/gen", "xb/onednn");
  std::map<int, Geomean> vs_generic, vs_onednn;
  for (int t : in.threads) {
    for (const std::string& layer : in.layers) {
      const MeasurementKey ref{layer, "reference", 1};
      const MeasurementKey gen{layer, "generic", t}, xb{layer, "xbyak", t}, dn{layer, "onednn", t};
      const double g = gflops_of(in, gen), x = gflops_of(in, xb), o = gflops_of(in, dn);
      const double useful = useful_share(in, layer);
      if (std::isnan(g) && std::isnan(x) && std::isnan(o) && std::isnan(gflops_of(in, ref))) continue;  // filtered out
      std::fprintf(out, "%-16s %2d %9s %16s %16s %16s %9s %9s\n", layer.c_str(), t,
                   t == in.threads.front() ? cell(gflops_of(in, ref), NAN).c_str() : "",
                   cell(g, peak_for(in, gen), useful).c_str(), cell(x, peak_for(in, xb), useful).c_str(),
                   cell(o, peak_for(in, dn), useful).c_str(), ratio_text(x, g).c_str(), ratio_text(x, o).c_str());
      if (!std::isnan(x) && !std::isnan(g)) vs_generic[t].add(x / g);
      if (!std::isnan(x) && !std::isnan(o)) vs_onednn[t].add(x / o);
    }
  }
  for (int t : in.threads) {
    const Geomean g = vs_generic[t], o = vs_onednn[t];
    if (g.count() || o.count())
      std::fprintf(out, "geomean %d thread(s): xbyak/generic %s over %d layers, xbyak/onednn %s over %d layers\n", t,
                   ratio_text(g.value(), 1).c_str(), g.count(), ratio_text(o.value(), 1).c_str(), o.count());
  }
  std::fprintf(out, "\nFMAs that reach the output, as a share of the counted GFLOP/s:");
  for (const std::string& layer : in.layers) {
    const auto share = in.useful_share.find(layer);
    if (share != in.useful_share.end()) std::fprintf(out, " %s %.3f;", layer.c_str(), share->second);
  }
  std::fprintf(out, "\n");
  bool jit_header = false;
  for (const auto& [key, values] : in.seconds) {
    if (key.impl.rfind("jit_", 0) != 0) continue;
    if (!jit_header) std::fprintf(out, "\nJIT (median per call):\n");
    jit_header = true;
    std::fprintf(out, "  %-16s %-16s %10.2f us\n", key.layer.c_str(), key.impl.c_str() + 4, 1e6 * median(values));
  }
  std::fprintf(out, "\nChecks against the reference (max |error| / max(1, max |reference|)) and what ran:\n");
  print_checks(out, in.info, in.threads.front(), "", max_error_text);
}

}  // namespace tconv3d::bench
