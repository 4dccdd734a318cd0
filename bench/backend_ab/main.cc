// Two code-generating backends on the suite layers (float32 forward and
// backward, bf16 forward and backward), A/B in one process: the
// same layer built on each, then single runs alternated A, B, A, B..., and
// per backend the best time, which on shared cores is the least disturbed
// run. With one thread the time is the calling thread's CPU time (another
// process on the core does not count); with more, wall time.
//
//   tconv3d_backend_ab [--suite layers.json] [--a xbyak] [--b llvm]
//                      [--pass forward|backward] [--dtype float32|bf16]
//                      [--threads 1] [--reps 20] [--layer NAME]
//
// Prints per layer A ms, B ms, B/A, each side's setup (create + first run,
// wall ms: plan, packing, code generation; the kernel cache is process-wide,
// so a kernel another layer already made is not made again) and B's kernel
// names. Run with OMP_WAIT_POLICY=passive.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/standalone.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tools/support/suite.hpp"

using namespace tconv3d;

namespace {

using bench::random_floats;

double now(bool cpu) { return cpu ? bench::thread_cpu_seconds() : bench::wall_seconds(); }

// One layer's runnable pass on one backend.
struct Side {
  std::unique_ptr<Layer> layer;
  std::function<void()> run;
  std::string kernels;
};

}  // namespace

int main(int argc, char** argv) try {
  std::string suite_path = TCONV3D_SUITE_PATH, pass = "forward", dtype = "float32", a_text = "xbyak", b_text = "llvm",
              layer_filter;
  int threads = 1, reps = 20;
  for (bench::Options o(argc, argv); o.next();) {
    if (o.flag == "--suite") suite_path = o.value();
    else if (o.flag == "--a") a_text = o.value();
    else if (o.flag == "--b") b_text = o.value();
    else if (o.flag == "--pass") pass = o.value();
    else if (o.flag == "--dtype") dtype = o.value();
    else if (o.flag == "--threads") threads = std::stoi(o.value());
    else if (o.flag == "--reps") reps = std::stoi(o.value());
    else if (o.flag == "--layer") layer_filter = o.value();
    else o.unknown();
  }
  if (pass != "forward" && pass != "backward") throw Error("--pass", "expected forward or backward, got " + pass);
  if (dtype != "float32" && dtype != "bf16") throw Error("--dtype", "expected float32 or bf16, got " + dtype);
  if (reps < 1) throw Error("--reps", "expected at least 1");
  const Backend backends[2] = {parse_backend(a_text), parse_backend(b_text)};
  const bool cpu_clock = threads == 1;
  std::printf("%s %s, %d thread(s), best of %d alternated runs (%s time), ms\n", pass.c_str(), dtype.c_str(), threads,
              reps, cpu_clock ? "thread CPU" : "wall");
  std::printf("%-18s %10s %10s %7s %9s %9s  %s\n", "layer", a_text.c_str(), b_text.c_str(), "b/a", "a setup",
              "b setup", "b's kernels");
  for (const SuiteLayer& s : load_suite(suite_path)) {
    if (!layer_filter.empty() && s.name != layer_filter) continue;
    Side sides[2];
    int64_t elements = 1;
    for (int64_t d : s.input_shape) elements *= d;
    const std::vector<float> x = random_floats(elements, 1);
    std::vector<uint16_t> x16(x.size());
    for (size_t i = 0; i < x.size(); ++i) x16[i] = float_to_bf16(x[i]);
    std::vector<float> y, dy, dx(x.size()), dk, db;
    std::vector<uint16_t> y16, dy16, dx16(x.size());
    double setup_ms[2] = {0, 0};  // create + first run: plan, packing, code generation
    for (int k = 0; k < 2; ++k) {
      const double setup_start = now(false);
      LayerOptions options;
      options.backend = backends[k];
      options.threads = threads;
      options.dtype = dtype == "bf16" ? DataType::kBfloat16 : DataType::kFloat32;
      sides[k].layer = std::make_unique<Layer>(Layer::create_initialized(s.config, s.input_shape, 1, options));
      const Layer& layer = *sides[k].layer;
      if (dtype == "bf16" && pass == "backward") {  // Layer::backward_bf16: dx, dK and db
        y16.resize(static_cast<size_t>(layer.output_elements()));
        layer.forward_bf16(x16.data(), y16.data());
        const std::vector<float> dy_f = random_floats(layer.output_elements(), 2);
        dy16.resize(dy_f.size());
        for (size_t i = 0; i < dy_f.size(); ++i) dy16[i] = float_to_bf16(dy_f[i]);
        dk.resize(layer.kernel().size());
        db.resize(layer.bias().size());
        sides[k].run = [&layer, &x16, &y16, &dy16, &dx16, &dk, &db] {
          layer.backward_bf16(x16.data(), y16.data(), dy16.data(), dx16.data(), dk.data(),
                              db.empty() ? nullptr : db.data());
        };
        sides[k].kernels = layer.backward_bf16_kernel_names();
      } else if (dtype == "bf16") {
        y16.resize(static_cast<size_t>(layer.output_elements()));
        sides[k].run = [&layer, &x16, &y16] { layer.forward_bf16(x16.data(), y16.data()); };
        sides[k].kernels = layer.kernel_name();
      } else if (pass == "forward") {
        y.resize(static_cast<size_t>(layer.output_elements()));
        sides[k].run = [&layer, &x, &y] { layer.forward(x.data(), y.data()); };
        sides[k].kernels = layer.kernel_name();
      } else {
        y.resize(static_cast<size_t>(layer.output_elements()));
        layer.forward(x.data(), y.data());
        dy = random_floats(layer.output_elements(), 2);
        dk.resize(layer.kernel().size());
        db.resize(layer.bias().size());
        sides[k].run = [&layer, &x, &y, &dy, &dx, &dk, &db] {
          layer.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), db.empty() ? nullptr : db.data());
        };
        sides[k].kernels = layer.backward_kernel_names();
      }
      sides[k].run();  // warm-up: first-use work, caches
      setup_ms[k] = 1e3 * (now(false) - setup_start);
    }
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < reps; ++r)
      for (int k = 0; k < 2; ++k) {
        const double t0 = now(cpu_clock);
        sides[k].run();
        best[k] = std::min(best[k], now(cpu_clock) - t0);
      }
    std::printf("%-18s %10.3f %10.3f %7.3f %9.1f %9.1f  %s\n", s.name.c_str(), 1e3 * best[0], 1e3 * best[1],
                best[1] / best[0], setup_ms[0], setup_ms[1], sides[1].kernels.c_str());
    std::fflush(stdout);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tconv3d_backend_ab: %s\n", e.what());
  return 1;
}
