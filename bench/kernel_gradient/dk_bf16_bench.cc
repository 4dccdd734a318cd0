// The bf16 backward's dK on the benchmark suite, A/B interleaved in one
// process: the vdpbf16ps voxel-pair kernel (runtime/kernels/bf16_kernel_gradient.hpp,
// repack + kernel, and the kernel alone) against the float32 dK kernel on x and
// dz widened from bf16 (the path it replaced: widen + kernel). Times are the
// best CPU time of the busiest OpenMP thread (as tconv3d_dk_bench; run with
// OMP_WAIT_POLICY=passive), so other processes on shared cores do not count.
// The kernel's share is of the measured vdpbf16ps peak (useful FLOPs).
//
//   tconv3d_dk_bf16_bench [--suite layers.json] [--threads 1] [--rounds 3] [--seconds 0.3] [--layer NAME]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/standalone.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "runtime/kernels/bf16_kernel_gradient.hpp"
#include "runtime/kernels/generated_kernel_gradient.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/suite.hpp"

using namespace tconv3d;

namespace {

// Best CPU seconds of the busiest thread in one call: a warm-up, then at least 3 and `seconds` of wall time.
double best_cpu(const std::function<void()>& body, double seconds, int threads) {
  double best = 1e30;
  for (const bench::CallTime& call : bench::time_calls(body, seconds, threads)) best = std::min(best, call.busiest_cpu);
  return best;
}

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (uint16_t& b : v) b = float_to_bf16(u(rng));
  return v;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string suite_path = TCONV3D_SUITE_PATH, layer_filter;
  int threads = 1, rounds = 3;
  double seconds = 0.3;
  for (bench::Options o(argc, argv); o.next();) {
    if (o.flag == "--suite")
      suite_path = o.value();
    else if (o.flag == "--threads")
      threads = std::stoi(o.value());
    else if (o.flag == "--rounds")
      rounds = std::stoi(o.value());
    else if (o.flag == "--seconds")
      seconds = std::stod(o.value());
    else if (o.flag == "--layer")
      layer_filter = o.value();
    else
      o.unknown();
  }
  if (threads < 1) throw Error("--threads", "must be at least 1");
  if (!detected_cpu_features().avx512_bf16) throw Error("cpu", "needs avx512_bf16");
  FmaPeakOptions peak_options;
  peak_options.threads = threads;
  double peak = 0;
  for (int r = 0; r < rounds; ++r) peak = std::max(peak, measure_bf16_peak(peak_options));
  std::printf("vdpbf16ps peak %.0f GFLOP/s (%d threads, best of %d); ms = best CPU ms of the busiest thread, "
              "best of %d rounds\n",
              peak, threads, rounds, rounds);
  std::printf("%-16s %10s %10s %10s %10s %7s %8s  %s\n", "layer", "widened", "bf16", "kernel", "repack", "speedup",
              "%peak", "kernel name");
  for (const SuiteLayer& layer : load_suite(suite_path)) {
    if (!layer_filter.empty() && layer.name != layer_filter) continue;
    Problem problem;
    problem.geometry = resolve_geometry(layer.config, layer.input_shape);
    const ConvGeometry& g = problem.geometry;
    GeneratedKernelGradient widened(problem, Backend::kXbyak, Isa::kAvx512);
    Bf16KernelGradient bf16(problem);
    const std::vector<uint16_t> x = random_bf16(g.input_elements(), 1), dz = random_bf16(g.output_elements(), 2);
    std::vector<float> xf(x.size()), dzf(dz.size()), dk(static_cast<size_t>(g.kernel_elements()));
    std::vector<uint32_t> xp(static_cast<size_t>(bf16.x_pair_elements())),
        dzp(static_cast<size_t>(bf16.dz_pair_elements()));
    auto widen = [threads](const std::vector<uint16_t>& in, std::vector<float>& out) {
      const int64_t n = int64_t(in.size());
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 65536)
      for (int64_t k = 0; k < n; ++k) out[size_t(k)] = bf16_to_float(in[size_t(k)]);
    };
    double a = 1e30, b = 1e30, kernel = 1e30, repack = 1e30;
    for (int r = 0; r < rounds; ++r) {
      a = std::min(a, best_cpu(
                          [&] {
                            widen(x, xf);
                            widen(dz, dzf);
                            widened.run(xf.data(), dzf.data(), dk.data(), threads);
                          },
                          seconds, threads));
      b = std::min(b, best_cpu([&] { bf16.run(x.data(), dz.data(), dk.data(), threads); }, seconds, threads));
      repack = std::min(repack, best_cpu([&] { bf16.repack(x.data(), dz.data(), xp.data(), dzp.data(), threads); },
                                         seconds, threads));
      kernel = std::min(kernel, best_cpu([&] { bf16.compute(xp.data(), dzp.data(), dk.data(), threads); }, seconds,
                                         threads));
    }
    const double share = 100.0 * g.useful_flops() / (kernel * 1e9) / peak;
    std::printf("%-16s %10.3f %10.3f %10.3f %10.3f %6.2fx %7.1f%%  %s\n", layer.name.c_str(), 1e3 * a, 1e3 * b,
                1e3 * kernel, 1e3 * repack, a / b, share, bf16.kernel_name().c_str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tconv3d_dk_bf16_bench: %s\n", e.what());
  return 1;
}
