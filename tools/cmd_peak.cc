// tconv3d peak: this machine's measured fp32 FMA ceiling (ymm, and zmm where
// the CPU has AVX-512), for 1 thread and for N threads.
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"
#include "tools/commands.hpp"
#include "tools/support/fma_peak.hpp"

namespace tconv3d::cli {

namespace {

constexpr const char* kPeakHelp =
    "usage: tconv3d peak [--threads N] [--runs R] [--seconds S] [--json]\n"
    "\n"
    "The fp32 FMA ceiling that benchmarks' \"% of peak\" divide by: independent\n"
    "vfmadd231ps chains from registers (12 ymm / 24 zmm accumulators, 3x the\n"
    "4-cycle latency times 2 FMA ports), 2 FLOP per lane. Each thread's rate is\n"
    "taken over its own CPU time, so other processes sharing the cores do not\n"
    "lower it; the best of R runs of about S CPU-seconds counts. Printed for 1\n"
    "thread and for N threads (the sum of the threads' rates).\n"
    "\n"
    "  --threads N   second row's thread count (default: OpenMP's, i.e. OMP_NUM_THREADS or the cores)\n"
    "  --runs R      runs per figure, the best counts (default 5, 1..1000)\n"
    "  --seconds S   CPU seconds per run (default 0.05, up to 10)\n"
    "  --json        one JSON object per line\n";

double parse_seconds(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(value) || value <= 0 || value > 10)
    throw Error("--seconds", "expected seconds in (0, 10], got '" + text + "'");
  return value;
}

}  // namespace

int peak_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--threads", "--runs", "--seconds"}, {"--json", "--help"});
  if (args.has("--help") || (args.positional().size() == 1 && args.positional().front() == "-h")) {
    std::fputs(kPeakHelp, stdout);
    return 0;
  }
  if (!args.positional().empty()) throw Error("peak", "unexpected argument '" + args.positional().front() + "'");
  const int threads = args.get_int("--threads", omp_get_max_threads());
  if (threads < 1) throw Error("--threads", "must be at least 1, got " + std::to_string(threads));
  FmaPeakOptions base;
  base.runs = args.get_int("--runs", base.runs);
  if (base.runs < 1 || base.runs > 1000) throw Error("--runs", "expected 1..1000, got " + std::to_string(base.runs));
  if (const auto seconds = args.get("--seconds")) base.seconds_per_run = parse_seconds(*seconds);
  const bool json = args.has("--json");
  const CpuFeatures& cpu = cpu_features();
  std::vector<Isa> isas;
  if (cpu.avx2_fma) isas.push_back(Isa::kAvx2);
  if (cpu.avx512) isas.push_back(Isa::kAvx512);
  if (isas.empty()) throw Error("peak", "this CPU (or OS) has neither AVX2+FMA nor AVX-512: no FMA peak to measure");
  if (!json) std::printf("CPU: %s\n", cpu.brand.c_str());
  std::vector<int> thread_counts = {1};
  if (threads != 1) thread_counts.push_back(threads);
  for (Isa isa : isas) {
    for (int t : thread_counts) {
      FmaPeakOptions options = base;
      options.threads = t;
      const double gflops = measure_fma_peak(isa, options);
      const char* reg = isa == Isa::kAvx512 ? "zmm" : "ymm";
      if (json) {
        const nlohmann::json line = {{"isa", to_string(isa)}, {"vector", reg},     {"threads", t},
                                     {"gflops", gflops},      {"gflops_per_thread", gflops / t}};
        std::printf("%s\n", line.dump().c_str());
      } else {
        std::printf("%-6s (%s) threads=%-3d %9.1f GFLOP/s  (%.1f per thread, best of %d runs)\n",
                    to_string(isa).c_str(), reg, t, gflops, gflops / t, options.runs);
      }
      std::fflush(stdout);
    }
  }
  // The bf16 ceiling (vdpbf16ps), where the CPU has AVX512_BF16.
  if (cpu.avx512_bf16) {
    for (int t : thread_counts) {
      FmaPeakOptions options = base;
      options.threads = t;
      const double gflops = measure_bf16_peak(options);
      if (json) {
        const nlohmann::json line = {{"isa", "avx512_bf16"}, {"vector", "zmm"},   {"threads", t},
                                     {"gflops", gflops},     {"gflops_per_thread", gflops / t}};
        std::printf("%s\n", line.dump().c_str());
      } else {
        std::printf("%-6s (%s) threads=%-3d %9.1f GFLOP/s  (%.1f per thread, best of %d runs, vdpbf16ps)\n", "bf16",
                    "zmm", t, gflops, gflops / t, options.runs);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace tconv3d::cli
