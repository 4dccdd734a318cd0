// Where a layer's float32 backward pass spends its time: Layer::backward as a
// whole, then each of its steps alone on the same data (the dz / bias pass,
// the channels_first transposes, the dx and dK kernels, zero-filled scratch).
// Best of several runs per piece, interleaved round by round so that load
// from other processes hits every piece alike, each from cold caches (64 MB
// written in between). Run with
// OMP_WAIT_POLICY=passive on a shared machine.
//
//   tconv3d_backward_profile [--suite layers.json] [--layer NAME[,NAME...]] [--threads 2] [--rounds 20]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/standalone.hpp"
#include "core/activation_gradient.hpp"
#include "core/problem.hpp"
#include "runtime/backward_factory.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "runtime/preactivation_gradient.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tools/support/suite.hpp"

namespace {

using namespace tconv3d;

using bench::random_floats;

struct Piece {
  std::string name;
  std::function<void()> body;
  double best_ms = 1e300;
  double best_cpu_ms = 1e300;  // process CPU time: what other processes on the cores do not add to
};

double cpu_ms() { return 1e3 * bench::process_cpu_seconds(); }

void time_piece(Piece& p) {
  const double c0 = cpu_ms();
  const auto t0 = std::chrono::steady_clock::now();
  p.body();
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  p.best_ms = std::min(p.best_ms, wall);
  p.best_cpu_ms = std::min(p.best_cpu_ms, cpu_ms() - c0);
}

int run(int argc, char** argv) {
  std::string suite_path = TCONV3D_SUITE_PATH, only;
  int threads = 2, rounds = 20;
  for (bench::Options o(argc, argv); o.next();) {
    if (o.flag == "--suite") suite_path = o.value();
    else if (o.flag == "--layer") only = "," + o.value() + ",";
    else if (o.flag == "--threads") threads = std::atoi(o.value().c_str());
    else if (o.flag == "--rounds") rounds = std::atoi(o.value().c_str());
    else o.unknown();
  }
  if (threads < 1) throw Error("--threads", "must be positive");
  for (const SuiteLayer& layer : load_suite(suite_path)) {
    if (!only.empty() && only.find("," + layer.name + ",") == std::string::npos) continue;
    LayerOptions options;
    options.threads = threads;
    const Layer l = Layer::create_initialized(layer.config, layer.input_shape, 7, options);
    const ConvGeometry& g = l.geometry();
    const Activation act = layer.config.activation;
    const std::vector<float> x = random_floats(g.input_elements(), 1);
    std::vector<float> y(static_cast<size_t>(l.output_elements()));
    l.forward(x.data(), y.data());
    const std::vector<float> dy = random_floats(l.output_elements(), 2);
    std::vector<float> dx(x.size()), dk(static_cast<size_t>(g.kernel_elements())),
        db(static_cast<size_t>(g.out_channels));

    // The pieces on channels_last copies, as Layer::backward runs them.
    ConvGeometry gl = g;
    gl.data_format = DataFormat::kChannelsLast;
    WeightStore weights(std::vector<float>(dk.size(), 0.5f), std::vector<float>(db.size(), 0.f));
    const auto exec = make_backward_executor(make_problem(gl, true, act), weights, options);
    const int64_t in_elems = g.input_elements(), pre = g.output_elements();
    const int64_t sp_in = in_elems / (g.batch * g.in_channels), sp_out = pre / (g.batch * g.out_channels);
    std::vector<float> dz_last = random_floats(pre, 3), x_last = random_floats(in_elems, 4), dx_last(x.size());
    std::vector<float> scratch_out(static_cast<size_t>(pre));
    const bool cf = g.data_format == DataFormat::kChannelsFirst;

    std::vector<Piece> pieces;
    pieces.push_back({"Layer::backward", [&] { l.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), db.data()); }});
    pieces.push_back({"dz+db pass", [&] {
                        const bool need_z = needs_preactivation(act);
                        preactivation_gradient(g, act, need_z ? y.data() : nullptr, y.data(), dy.data(), db.data(),
                                               scratch_out.data(), threads);
                      }});
    pieces.push_back({"dx kernel", [&] { exec->input_gradient(dz_last.data(), dx_last.data(), threads); }});
    pieces.push_back({"dK kernel", [&] { exec->kernel_gradient(x_last.data(), dz_last.data(), dk.data(), threads); }});
    pieces.push_back({"zeroed vector(out)", [&] {
                        std::vector<float> v(static_cast<size_t>(pre));
                        asm volatile("" ::"r"(v.data()) : "memory");
                      }});
    if (cf && fuses_channels_last_dz(g, act)) {
      pieces.push_back({"dz to cl, no db", [&] {
                          const bool need_z = needs_preactivation(act);
                          preactivation_gradient_to_channels_last(g, act, need_z ? y.data() : nullptr, y.data(),
                                                                  dy.data(), nullptr, scratch_out.data(), threads);
                        }});
    }
    if (cf && fuses_channels_last_dz(g, act)) {
      pieces.push_back({"dz+db to channels_last", [&] {
                          const bool need_z = needs_preactivation(act);
                          preactivation_gradient_to_channels_last(g, act, need_z ? y.data() : nullptr, y.data(),
                                                                  dy.data(), db.data(), scratch_out.data(), threads);
                        }});
    }
    if (cf) {
      pieces.push_back({"memcpy dz (bound)", [&] {
                          std::memcpy(scratch_out.data(), dy.data(), dy.size() * sizeof(float));
                        }});
      pieces.push_back({"transpose dz", [&] {
                          transpose_batched(dy.data(), scratch_out.data(), g.batch, g.out_channels, sp_out, threads);
                        }});
      pieces.push_back({"transpose dx", [&] {
                          transpose_batched(dx_last.data(), dx.data(), g.batch, sp_in, g.in_channels, threads);
                        }});
      pieces.push_back({"transpose x", [&] {
                          transpose_batched(x.data(), x_last.data(), g.batch, g.in_channels, sp_in, threads);
                        }});
      pieces.push_back({"zeroed vector(in)", [&] {
                          std::vector<float> v(static_cast<size_t>(in_elems));
                          asm volatile("" ::"r"(v.data()) : "memory");
                        }});
    }
    std::vector<float> flush(size_t(64) << 20 >> 2);
    for (Piece& p : pieces) p.body();  // warm-up: code generation, first touch
    for (int r = 0; r < rounds; ++r)
      for (Piece& p : pieces) {
        // Every piece starts from cold caches (else one piece warms the L3
        // for the next, and the order of the pieces changes their times).
        std::fill(flush.begin(), flush.end(), float(r));
        time_piece(p);
      }
    std::printf("%s (%s, %d threads; dx %s, dK %s)\n", layer.name.c_str(), cf ? "channels_first" : "channels_last",
                threads, exec->input_gradient_kernel_name().c_str(), exec->kernel_gradient_kernel_name().c_str());
    std::printf("  %-22s %9s %9s\n", "piece", "wall_ms", "cpu_ms");
    for (const Piece& p : pieces) std::printf("  %-22s %9.3f %9.3f\n", p.name.c_str(), p.best_ms, p.best_cpu_ms);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tconv3d::bench::run_main("tconv3d_backward_profile", 2, [&] { return run(argc, argv); });
}
