// The generated dK kernels on the benchmark suite: GFLOP/s (FLOPs = the layer's
// forward FLOPs, ConvGeometry::flops) and share of the measured FMA peak of
// the same ISA and thread count (from the useful FLOPs, ConvGeometry::
// useful_flops: the products of a cropped border are never computed, as in
// the forward's figures), over several interleaved rounds (the cores
// are shared: the spread is reported). Like the FMA peak, the rate is taken
// over CPU time, so other processes on the cores do not lower it: the CPU
// time of the busiest OpenMP thread (the pool's threads read their clocks in
// a parallel region before and after the run), best repetition. Run with
// OMP_WAIT_POLICY=passive so that waiting threads do not spin. Wall-clock
// GFLOP/s (median) are printed too.
//
//   tconv3d_dk_bench [--suite layers.json] [--isa avx512|avx2|both] [--threads 1,2]
//                    [--rounds 3] [--seconds 0.3] [--layer NAME] [--backend xbyak,llvm]
// --backend lists the emitters to time (default xbyak), interleaved in each
// round; the kernel names tell them apart (LLVM's end in __llvm).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/standalone.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "runtime/kernels/generated_kernel_gradient.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/suite.hpp"

using namespace tconv3d;

namespace {

using bench::parse_threads;
using bench::random_floats;
using bench::wall_seconds;

struct Timing {
  double best_cpu = 0;     // least CPU seconds of the busiest thread in one repetition
  double median_wall = 0;  // seconds
};

// One warm-up, then repetitions until `seconds` of wall time and at least 3.
Timing time_body(const std::function<void()>& body, double seconds, int threads) {
  std::vector<double> cpu, wall;
  for (const bench::CallTime& call : bench::time_calls(body, seconds, threads)) {
    cpu.push_back(call.busiest_cpu);
    wall.push_back(call.wall);
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(wall.begin(), wall.end());
  return {cpu.front(), wall[wall.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) try {
  std::string suite_path = TCONV3D_SUITE_PATH, isa_text = "both", layer_filter, backend_text = "xbyak";
  std::vector<int> thread_counts = {1, 2};
  int rounds = 3;
  double seconds = 0.3;
  for (bench::Options o(argc, argv); o.next();) {
    if (o.flag == "--suite")
      suite_path = o.value();
    else if (o.flag == "--isa")
      isa_text = o.value();
    else if (o.flag == "--threads")
      thread_counts = parse_threads(o.value());
    else if (o.flag == "--rounds")
      rounds = std::stoi(o.value());
    else if (o.flag == "--seconds")
      seconds = std::stod(o.value());
    else if (o.flag == "--layer")
      layer_filter = o.value();
    else if (o.flag == "--backend")
      backend_text = o.value();
    else
      o.unknown();
  }
  std::vector<Backend> backends;
  {
    std::stringstream in(backend_text);
    std::string item;
    while (std::getline(in, item, ',')) backends.push_back(parse_backend(item));
  }
  std::vector<Isa> isas;
  if (isa_text == "both" || isa_text == "avx512")
    if (detected_cpu_features().avx512) isas.push_back(Isa::kAvx512);
  if (isa_text == "both" || isa_text == "avx2")
    if (detected_cpu_features().avx2_fma) isas.push_back(Isa::kAvx2);

  struct Row {
    std::string layer, kernel;
    Isa isa;
    int threads;
    double flops, useful_flops;
    std::vector<double> gflops, share, wall_gflops;
  };
  std::vector<Row> rows;
  std::map<std::pair<int, int>, std::vector<double>> peaks;  // (isa, threads) -> per round
  const std::vector<SuiteLayer> suite = load_suite(suite_path);
  struct Prepared {
    std::unique_ptr<GeneratedKernelGradient> kernel;
    std::vector<float> x, dz, dk;
  };
  std::vector<Prepared> prepared;
  std::vector<std::pair<std::string, double>> setup_ms;  // kernel name, construction (compile) time
  for (const SuiteLayer& layer : suite) {
    if (!layer_filter.empty() && layer.name != layer_filter) continue;
    const ConvGeometry g = resolve_geometry(layer.config, layer.input_shape);
    for (Isa isa : isas) {
      for (Backend backend : backends) {
        Problem problem;
        problem.geometry = g;
        Prepared p;
        const double setup_start = wall_seconds();  // the first use of a kernel compiles it
        p.kernel = std::make_unique<GeneratedKernelGradient>(problem, backend, isa);
        setup_ms.emplace_back(p.kernel->kernel_name(), 1e3 * (wall_seconds() - setup_start));
        p.x = random_floats(g.input_elements(), 1);
        p.dz = random_floats(g.output_elements(), 2);
        p.dk.assign(static_cast<size_t>(g.kernel_elements()), 0.0f);
        for (int t : thread_counts)
          rows.push_back({layer.name, p.kernel->kernel_name(), isa, t, g.flops(), g.useful_flops(), {}, {}, {}});
        prepared.push_back(std::move(p));
      }
    }
  }
  for (int round = 0; round < rounds; ++round) {
    for (Isa isa : isas)
      for (int t : thread_counts) {
        FmaPeakOptions options;
        options.threads = t;
        peaks[{int(isa), t}].push_back(measure_fma_peak(isa, options));
      }
    size_t row = 0;
    for (Prepared& p : prepared)
      for (size_t k = 0; k < thread_counts.size(); ++k, ++row) {
        Row& r = rows[row];
        const Timing timing =
            time_body([&] { p.kernel->run(p.x.data(), p.dz.data(), p.dk.data(), r.threads); }, seconds, r.threads);
        const double gflops = r.flops / (timing.best_cpu * 1e9);
        r.gflops.push_back(gflops);
        r.wall_gflops.push_back(r.flops / (timing.median_wall * 1e9));
        r.share.push_back(100.0 * gflops * (r.useful_flops / r.flops) / peaks[{int(r.isa), r.threads}].back());
      }
  }
  std::printf("FMA peak, GFLOP/s per round:\n");
  for (const auto& [key, values] : peaks) {
    std::printf("  peak %-6s %d thr:", to_string(Isa(key.first)).c_str(), key.second);
    for (double v : values) std::printf(" %.0f", v);
    std::printf("\n");
  }
  std::printf("%-16s %-6s %3s %8s %8s %22s  %s\n", "layer", "isa", "thr", "GFLOP/s", "wall", "% peak min/med/max",
              "kernel");
  for (Row& r : rows) {
    std::vector<double> s = r.share, gf = r.gflops, wall = r.wall_gflops;
    std::sort(s.begin(), s.end());
    std::sort(gf.begin(), gf.end());
    std::sort(wall.begin(), wall.end());
    std::printf("%-16s %-6s %3d %8.1f %8.1f %8.1f %6.1f %6.1f  %s\n", r.layer.c_str(), to_string(r.isa).c_str(),
                r.threads, gf[gf.size() / 2], wall[wall.size() / 2], s.front(), s[s.size() / 2], s.back(),
                r.kernel.c_str());
  }
  std::printf("setup (plan + code generation), ms:\n");
  for (const auto& [kernel, ms] : setup_ms) std::printf("  %8.1f  %s\n", ms, kernel.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tconv3d_dk_bench: %s\n", e.what());
  return 1;
}
