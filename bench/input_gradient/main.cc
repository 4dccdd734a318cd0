// The generated input gradient (dx from dz) alone on the suite layers: time,
// GFLOP/s and share of the FMA peak at each thread count. The FLOPs are the
// products dx really needs (ConvGeometry::useful_flops: the forward pass's
// products that land inside the output; equal to flops() for valid padding).
// On a shared machine the wall clock counts the time other processes hold
// the cores, so each run is also timed by the process's CPU time divided by
// the threads (as the FMA peak is): the best run by either clock counts.
// Run with OMP_WAIT_POLICY=passive so idle OpenMP threads do not spin on the
// CPU clock.
//
//   tconv3d_dx_bench [--suite layers.json] [--backend xbyak|llvm] [--isa auto|avx2|avx512]
//                    [--threads 1,2] [--layer NAME] [--seconds 0.5]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/standalone.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "runtime/kernels/generated_input_gradient.hpp"
#include "tconv3d/error.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/suite.hpp"
#include <algorithm>
#include <chrono>
#include <ctime>

namespace {

using namespace tconv3d;

using bench::parse_threads;
using bench::process_cpu_seconds;
using bench::random_floats;

struct Best {
  double wall_ms = 1e300;
  double cpu_ms = 1e300;  // process CPU time / threads
  int runs = 0;
};

// One warm-up run, then runs until `seconds` of wall time and 5 runs.
template <typename Body>
Best time_best(const Body& body, int threads, double seconds) {
  body();
  Best best;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    body();
    const double cpu = process_cpu_seconds() - c0;
    const auto w1 = std::chrono::steady_clock::now();
    best.wall_ms = std::min(best.wall_ms, std::chrono::duration<double, std::milli>(w1 - w0).count());
    best.cpu_ms = std::min(best.cpu_ms, 1e3 * cpu / threads);
    ++best.runs;
    if (best.runs >= 5 && std::chrono::duration<double>(w1 - start).count() >= seconds) return best;
  }
}

int run(int argc, char** argv) {
  std::string suite_path = TCONV3D_SUITE_PATH, only, backend_name = "xbyak", isa_name = "auto";
  std::vector<int> threads = {1, 2};
  double seconds = 0.5;
  for (bench::Options o(argc, argv); o.next();) {
    if (o.flag == "--suite") suite_path = o.value();
    else if (o.flag == "--backend") backend_name = o.value();
    else if (o.flag == "--isa") isa_name = o.value();
    else if (o.flag == "--threads") threads = parse_threads(o.value());
    else if (o.flag == "--layer") only = o.value();
    else if (o.flag == "--seconds") seconds = std::atof(o.value().c_str());
    else o.unknown();
  }
  const Backend backend = parse_backend(backend_name);
  const Isa isa = resolve_isa(parse_isa(isa_name));
  std::vector<double> peak;
  for (int t : threads) peak.push_back(measure_fma_peak(isa, FmaPeakOptions{t, 5, 0.05}));
  std::printf("# dx (input gradient), %s on %s; FMA peak", backend_name.c_str(), to_string(isa).c_str());
  for (size_t k = 0; k < threads.size(); ++k) std::printf(" %d thr %.1f GFLOP/s;", threads[k], peak[k]);
  std::printf("\n%-16s %-72s %4s %8s %8s %8s %6s %8s %6s\n", "layer", "kernel", "thr", "wall_ms", "cpu_ms",
              "GFLOP/s", "%peak", "cpuGF/s", "%peak");
  for (const SuiteLayer& layer : load_suite(suite_path)) {
    if (!only.empty() && layer.name != only) continue;
    ConvGeometry g = resolve_geometry(layer.config, layer.input_shape);
    g.data_format = DataFormat::kChannelsLast;  // the backward kernels run channels_last
    const Problem problem = make_problem(g, true, Activation{});
    const std::vector<float> kernel = random_floats(g.kernel_elements(), 1);
    const std::vector<float> dz = random_floats(g.output_elements(), 2);
    std::vector<float> dx(static_cast<size_t>(g.input_elements()));
    const GeneratedInputGradient dx_kernel(problem, kernel.data(), backend, isa);
    for (size_t k = 0; k < threads.size(); ++k) {
      const int t = threads[k];
      // The best run: other processes sharing the cores only slow a run down.
      const Best r = time_best([&] { dx_kernel.run(dz.data(), dx.data(), t); }, t, seconds);
      const double wall = g.useful_flops() / (r.wall_ms * 1e6), cpu = g.useful_flops() / (r.cpu_ms * 1e6);
      std::printf("%-16s %-72s %4d %8.3f %8.3f %8.1f %5.1f%% %8.1f %5.1f%%\n", layer.name.c_str(),
                  dx_kernel.kernel_name().c_str(), t, r.wall_ms, r.cpu_ms, wall, 100.0 * wall / peak[k], cpu,
                  100.0 * cpu / peak[k]);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tconv3d::bench::run_main("tconv3d_dx_bench", 2, [&] { return run(argc, argv); });
}
