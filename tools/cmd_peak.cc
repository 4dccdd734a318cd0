// tconv3d peak: this machine's measured fp32 FMA ceiling (ymm, and zmm where
// the CPU has AVX-512), for 1 thread and for N threads.
#include <omp.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "runtime/cpu_features.hpp"
#include "runtime/fma_peak.hpp"
#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

namespace tconv3d::cli {

int peak_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--threads"}, {"--json"});
  if (!args.positional().empty()) throw Error("peak", "unexpected argument '" + args.positional().front() + "'");
  const int threads = args.get_int("--threads", omp_get_max_threads());
  if (threads < 1) throw Error("--threads", "must be at least 1, got " + std::to_string(threads));
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
      FmaPeakOptions options;
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
  return 0;
}

}  // namespace tconv3d::cli
