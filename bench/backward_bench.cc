#include "bench/backward_bench.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>

#include "bench/side_by_side.hpp"
#include "tools/support/accuracy.hpp"

#ifdef TCONV3D_HAVE_ONEDNN
#include "bench/onednn_deconv_backward.hpp"
#include "bench/onednn_problem.hpp"
#endif

namespace tconv3d::bench {
namespace {

// Gradients above this (relative to their scale) fail the benchmark: a
// descriptor mapping mistake shows as errors of order 1.
constexpr double kMaxError = 1e-4;
const char* const kTconv3d = "backward/tconv3d";
const char* const kOneDnn = "backward/onednn";

// What every backward benchmark of one layer shares: the linear layer's
// config, an output gradient, the gradients' buffers and the reference.
struct BackwardData {
  LayerConfig linear;
  std::vector<float> dy, y, dx, dk, db;
  std::vector<float> ref_dx, ref_dk, ref_db;
  double reference_seconds = 0;
};

class BackwardImplementation {
 public:
  virtual ~BackwardImplementation() = default;
  // The timed call: dx, dK, db into `d` (dK may stay in an internal layout).
  virtual void run(const LayerData& data, BackwardData& d) const = 0;
  // After run(): dK in Keras layout into d.dk (a no-op where run wrote it there).
  virtual void export_kernel_gradient(BackwardData& /*d*/) const {}
  virtual std::string label() const = 0;
  virtual bool uses_zmm() const = 0;
};

class LayerBackward final : public BackwardImplementation {
 public:
  explicit LayerBackward(Layer layer) : layer_(std::move(layer)) {}
  void run(const LayerData& data, BackwardData& d) const override {
    layer_.backward(data.input.data(), d.y.data(), d.dy.data(), d.dx.data(), d.dk.data(),
                    d.db.empty() ? nullptr : d.db.data());
  }
  std::string label() const override { return to_string(layer_.backend()) + ": " + layer_.backward_kernel_names(); }
  // Layer::isa() is the forward kernel's, which may differ from the backward
  // kernels' (a 4-filter forward picks AVX2); their names end in their ISA.
  bool uses_zmm() const override { return layer_.backward_kernel_names().find("avx512") != std::string::npos; }

 private:
  Layer layer_;
};

#ifdef TCONV3D_HAVE_ONEDNN
class OneDnnBackward final : public BackwardImplementation {
 public:
  OneDnnBackward(const LayerData& data, int threads)
      : backward_(data.geometry, data.kernel.data(), !data.bias.empty(), threads) {}
  void run(const LayerData& data, BackwardData& d) const override {
    backward_.run(data.input.data(), d.dy.data(), d.dx.data(), d.db.empty() ? nullptr : d.db.data());
  }
  void export_kernel_gradient(BackwardData& d) const override { backward_.kernel_gradient(d.dk.data()); }
  std::string label() const override {
    return "data " + backward_.data_impl() + ", weights " + backward_.weights_impl() + "; K " +
           (backward_.weights_reordered() ? "reordered once into oneDNN's layout" : "in Keras layout") + ", dK " +
           (backward_.kernel_gradient_reordered() ? "left in oneDNN's layout" : "in Keras layout") +
           " (reorders outside the timed region)";
  }
  bool uses_zmm() const override { return onednn_isa_has_zmm(); }

 private:
  OneDnnDeconvBackward backward_;
};
#endif

std::map<std::string, BackwardData> g_data;  // per layer
ImplementationCache<BackwardImplementation, BackwardInfo> g_implementations;

BackwardData& data_for(const LayerData& data) {
  const auto found = g_data.find(data.entry.name);
  if (found != g_data.end()) return found->second;
  BackwardData& d = g_data[data.entry.name];
  d.linear = data.entry.config;
  d.linear.activation = Activation{};
  const ConvGeometry& g = data.geometry;
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  d.dy.resize(size_t(g.output_elements()));
  for (float& v : d.dy) v = dist(rng);
  d.y.resize(d.dy.size());
  d.dx.resize(data.input.size());
  d.dk.resize(data.kernel.size());
  d.db.resize(data.bias.size());
  d.ref_dx.resize(d.dx.size());
  d.ref_dk.resize(d.dk.size());
  d.ref_db.resize(d.db.size());
  LayerOptions reference;
  reference.backend = Backend::kReference;
  reference.threads = 1;
  const Layer layer = data.make_layer(reference, d.linear);
  // y: the linear layer's output (a linear backward does not read it; made
  // anyway so the call is the one a training step makes).
  LayerOptions fast;
  fast.threads = 1;
  data.make_layer(fast, d.linear).forward(data.input.data(), d.y.data());
  const auto start = std::chrono::steady_clock::now();
  layer.backward(data.input.data(), d.y.data(), d.dy.data(), d.ref_dx.data(), d.ref_dk.data(),
                 d.ref_db.empty() ? nullptr : d.ref_db.data());
  d.reference_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return d;
}

std::unique_ptr<BackwardImplementation> make(const std::string& impl, const LayerData& data, const BackwardData& d,
                                             int threads) {
  if (impl == kTconv3d) {
    LayerOptions options;  // the backend `tconv3d bench --pass backward` picks
    options.threads = threads;
    return std::make_unique<LayerBackward>(data.make_layer(options, d.linear));
  }
#ifdef TCONV3D_HAVE_ONEDNN
  return std::make_unique<OneDnnBackward>(data, threads);
#else
  throw std::runtime_error("oneDNN is not in this build (apt: libdnnl-dev)");
#endif
}

const BackwardImplementation* implementation_for(LayerData& data, const MeasurementKey& key) {
  return g_implementations.find_or_build(key, [&](BackwardInfo& info) {
    BackwardData& d = data_for(data);
    auto impl = make(key.impl, data, d, key.threads);
    std::fill(d.dx.begin(), d.dx.end(), NAN);
    std::fill(d.dk.begin(), d.dk.end(), NAN);
    std::fill(d.db.begin(), d.db.end(), NAN);
    impl->run(data, d);
    impl->export_kernel_gradient(d);
    info.dx_error = scaled_max_error(d.dx.data(), d.ref_dx.data(), d.dx.size());
    info.dk_error = scaled_max_error(d.dk.data(), d.ref_dk.data(), d.dk.size());
    if (!d.db.empty()) info.db_error = scaled_max_error(d.db.data(), d.ref_db.data(), d.db.size());
    info.label = impl->label();
    info.uses_zmm = impl->uses_zmm();
    if (!(info.dx_error <= kMaxError && info.dk_error <= kMaxError && info.db_error <= kMaxError)) {
      char text[160];
      std::snprintf(text, sizeof text, "gradients differ from the reference: dx %.3g, dK %.3g, db %.3g",
                    info.dx_error, info.dk_error, info.db_error);
      info.skipped = text;
    }
    return impl;
  });
}

void bench_backward(benchmark::State& state, LayerData* data, MeasurementKey key) {
  const BackwardImplementation* impl = implementation_for(*data, key);
  const BackwardInfo& info = g_implementations.info(key);
  BackwardData* d = impl ? &g_data.at(data->entry.name) : nullptr;
  if (!time_or_skip(state, impl != nullptr, info.skipped, [&] { impl->run(*data, *d); })) return;
  set_rate_counters(state, 2.0 * data->flops);
  state.SetLabel(info.label);
}

double peak_for(const SummaryInput& in, const MeasurementKey& key) {
  const auto info = g_implementations.info().find(key);
  return fma_peak(in.peaks, info != g_implementations.info().end() && info->second.uses_zmm, key.threads);
}

// "ms  GFLOP/s (% of peak)" for one measurement, or "-".
std::string cell(double seconds, double flops, double useful, double peak) {
  if (std::isnan(seconds)) return "-";
  const double gflops = flops / seconds / 1e9;
  char text[64];
  if (std::isnan(peak)) {
    std::snprintf(text, sizeof text, "%8.3f %7.1f", 1e3 * seconds, gflops);
  } else {
    std::snprintf(text, sizeof text, "%8.3f %7.1f (%3.0f%%)", 1e3 * seconds, gflops, 100.0 * gflops * useful / peak);
  }
  return text;
}

std::string error_text(double e) {
  if (e < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1e", e);
  return text;
}

}  // namespace

void register_backward_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers,
                                  const std::vector<int>& threads, CollectingReporter& reporter) {
  for (const auto& data : layers)
    register_side_by_side(data.get(), threads, {kTconv3d, kOneDnn}, reporter, bench_backward);
}

void print_backward_summary(std::FILE* out, const SummaryInput& in) {
  bool any = false;
  for (const auto& [key, values] : in.seconds) any = any || key.impl == kTconv3d || key.impl == kOneDnn;
  if (!any && g_implementations.info().empty()) return;
  std::fprintf(out, "\n== backward: dx + dK + db of the linear layer, median ms and GFLOP/s over interleaved "
                    "repetitions (%% of measured FMA peak) ==\n");
  std::fprintf(out, "(GFLOP/s count 2x the forward's FLOPs; %% of peak counts only the FMAs that reach the output, "
                    "as above.\n tconv3d: Layer::backward. oneDNN: deconvolution_backward_data + "
                    "deconvolution_backward_weights with db,\n forward_training hint, data in the layer's layout, "
                    "weights reordered once into the layout oneDNN picks\n and dK left in its layout: the reorders "
                    "are outside the timed region. tc/onednn: oneDNN's time / tconv3d's)\n\n");
  std::fprintf(out, "%-16s %2s %24s %24s %10s\n", "layer", "t", "tconv3d ms GFLOP/s", "onednn ms GFLOP/s",
               "tc/onednn");
  std::map<int, Geomean> geomean;
  for (int t : in.threads) {
    for (const std::string& layer : in.layers) {
      const MeasurementKey tc{layer, kTconv3d, t}, dn{layer, kOneDnn, t};
      const double a = median_seconds(in, tc), b = median_seconds(in, dn);
      if (std::isnan(a) && std::isnan(b)) continue;
      const double flops = 2.0 * in.flops.at(layer);
      const double useful = useful_share(in, layer);
      if (!std::isnan(a) && !std::isnan(b)) geomean[t].add(b / a);
      std::fprintf(out, "%-16s %2d %24s %24s %10s\n", layer.c_str(), t,
                   cell(a, flops, useful, peak_for(in, tc)).c_str(), cell(b, flops, useful, peak_for(in, dn)).c_str(),
                   ratio_text(b, a).c_str());
    }
  }
  for (const auto& [t, g] : geomean)
    std::fprintf(out, "geomean %d thread(s): tconv3d/onednn %.2fx over %d layers\n", t, g.value(), g.count());
  std::fprintf(out, "\nBackward checks against the reference backward (max |error| / max(1, max |reference|)), "
                    "once per layer and thread count, and what ran:\n");
  print_checks(out, g_implementations.info(), in.threads.front(), "backward/", [](const BackwardInfo& info) {
    return "dx " + error_text(info.dx_error) + " dK " + error_text(info.dk_error) + " db " + error_text(info.db_error) +
           "  " + info.label;
  });
  std::fprintf(out, "Reference backward (double accumulation, 1 thread):");
  for (const auto& [layer, d] : g_data) std::fprintf(out, " %s %.2f s;", layer.c_str(), d.reference_seconds);
  std::fprintf(out, "\n");
}

}  // namespace tconv3d::bench
