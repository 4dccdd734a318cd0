#include "bench/bf16_bench.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/cpu_features.hpp"
#include "bench/side_by_side.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tools/support/accuracy.hpp"
#include "tools/support/fma_peak.hpp"

#ifdef TCONV3D_HAVE_ONEDNN
#include "bench/onednn_bf16.hpp"
#endif

namespace tconv3d::bench {
namespace {

// bf16 inputs and weights carry 8 significant bits: against the float32
// reference an output is off by a few 2^-9 relative (a mis-set descriptor
// is off by order 1); float32 must match as in the forward table.
constexpr double kMaxBf16Error = 3e-2;
constexpr double kMaxFloat32Error = 1e-4;
const char* const kTconv3d = "bf16/tconv3d";
const char* const kOneDnn = "bf16/onednn";
const char* const kFloat32 = "bf16/float32";

struct Bf16Data {
  std::vector<uint16_t> input, output;
  // The first checked output of each bf16 implementation (1 thread or the
  // first thread count), as floats, to compare the two with each other.
  std::map<std::string, std::vector<float>> first_output;
};

class Bf16Implementation {
 public:
  virtual ~Bf16Implementation() = default;
  virtual void run(LayerData& data, Bf16Data& d) const = 0;
  virtual bool is_bf16() const { return true; }
  virtual std::string label() const = 0;
  virtual bool uses_zmm() const { return true; }  // vdpbf16ps is AVX-512 only
};

class LayerBf16 final : public Bf16Implementation {
 public:
  explicit LayerBf16(Layer layer) : layer_(std::move(layer)) {}
  void run(LayerData&, Bf16Data& d) const override { layer_.forward_bf16(d.input.data(), d.output.data()); }
  std::string label() const override { return layer_.kernel_name(); }

 private:
  Layer layer_;
};

class LayerFloat32 final : public Bf16Implementation {
 public:
  explicit LayerFloat32(Layer layer) : layer_(std::move(layer)) {}
  void run(LayerData& data, Bf16Data&) const override { layer_.forward(data.input.data(), data.output.data()); }
  bool is_bf16() const override { return false; }
  std::string label() const override { return layer_.kernel_name(); }
  bool uses_zmm() const override { return layer_.isa() == "avx512"; }

 private:
  Layer layer_;
};

#ifdef TCONV3D_HAVE_ONEDNN
class OneDnnBf16 final : public Bf16Implementation {
 public:
  OneDnnBf16(const LayerData& data, int threads)
      : deconv_(data.geometry, data.entry.config.activation, data.kernel.data(),
                data.bias.empty() ? nullptr : data.bias.data(), threads) {}
  void run(LayerData&, Bf16Data& d) const override { deconv_.run(d.input.data(), d.output.data()); }
  std::string label() const override {
    return "onednn " + deconv_.impl() + (deconv_.weights_reordered() ? ", weights reordered once to bf16 in its layout"
                                                                      : ", bf16 weights in Keras layout");
  }

 private:
  OneDnnDeconvBf16 deconv_;
};
#endif

std::map<std::string, Bf16Data> g_data;
ImplementationCache<Bf16Implementation> g_implementations;
std::map<int, double> g_bf16_peaks;  // threads -> GFLOP/s

Bf16Data& data_for(const LayerData& data) {
  const auto found = g_data.find(data.entry.name);
  if (found != g_data.end()) return found->second;
  Bf16Data& d = g_data[data.entry.name];
  d.input.resize(data.input.size());
  for (size_t i = 0; i < d.input.size(); ++i) d.input[i] = float_to_bf16(data.input[i]);
  d.output.resize(data.output.size());
  return d;
}

std::unique_ptr<Bf16Implementation> make(const std::string& impl, const LayerData& data, int threads) {
  if (!cpu_features().avx512_bf16)
    throw std::runtime_error("this CPU has no AVX512_BF16 (vdpbf16ps): no bf16 side-by-side");
  LayerOptions options;
  options.backend = Backend::kXbyak;
  options.threads = threads;
  if (impl == kFloat32) return std::make_unique<LayerFloat32>(data.make_layer(options, data.entry.config));
  if (impl == kTconv3d) {
    options.dtype = DataType::kBfloat16;
    return std::make_unique<LayerBf16>(data.make_layer(options, data.entry.config));
  }
#ifdef TCONV3D_HAVE_ONEDNN
  return std::make_unique<OneDnnBf16>(data, threads);
#else
  throw std::runtime_error("oneDNN is not in this build (apt: libdnnl-dev)");
#endif
}

const Bf16Implementation* implementation_for(LayerData& data, const MeasurementKey& key) {
  return g_implementations.find_or_build(key, [&](ImplementationInfo& info) {
    auto impl = make(key.impl, data, key.threads);
    Bf16Data& d = data_for(data);
    impl->run(data, d);
    info.label = impl->label();
    info.uses_zmm = impl->uses_zmm();
    const std::vector<float>& reference = data.reference();
    if (impl->is_bf16()) {
      std::vector<float> out(d.output.size());
      for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(d.output[i]);
      info.max_error = scaled_max_error(out.data(), reference.data(), out.size());
      d.first_output.emplace(key.impl, std::move(out));
    } else {
      info.max_error = scaled_max_error(data.output.data(), reference.data(), reference.size());
    }
    skip_above(info, impl->is_bf16() ? kMaxBf16Error : kMaxFloat32Error, "the float32 reference");
    return impl;
  });
}

void bench_bf16(benchmark::State& state, LayerData* data, MeasurementKey key) {
  const Bf16Implementation* impl = implementation_for(*data, key);
  const ImplementationInfo& info = g_implementations.info(key);
  Bf16Data* d = impl ? &g_data.at(data->entry.name) : nullptr;
  if (!time_or_skip(state, impl != nullptr, info.skipped, [&] { impl->run(*data, *d); })) return;
  set_rate_counters(state, data->flops);
  state.SetLabel(info.label);
}

std::string ms_cell(double seconds, double flops, double useful, double peak) {
  if (std::isnan(seconds)) return "-";
  char text[48];
  if (std::isnan(peak) || peak <= 0) {
    std::snprintf(text, sizeof text, "%8.3f", 1e3 * seconds);
  } else {
    std::snprintf(text, sizeof text, "%8.3f (%3.0f%%)", 1e3 * seconds, 100.0 * flops / seconds / 1e9 * useful / peak);
  }
  return text;
}

}  // namespace

void register_bf16_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers,
                              const std::vector<int>& threads, CollectingReporter& reporter) {
  if (cpu_features().avx512_bf16) {
    for (int t : threads) {
      FmaPeakOptions options;
      options.threads = t;
      g_bf16_peaks[t] = measure_bf16_peak(options);
    }
  }
  for (const auto& data : layers)
    register_side_by_side(data.get(), threads, {kTconv3d, kOneDnn, kFloat32}, reporter, bench_bf16);
}

void print_bf16_summary(std::FILE* out, const SummaryInput& in) {
  bool any = false;
  for (const auto& [key, values] : in.seconds) any = any || key.impl.rfind("bf16/", 0) == 0;
  const auto& checked = g_implementations.info();
  if (!any && checked.empty()) return;
  std::fprintf(out, "\n== bf16 forward: median ms over interleaved repetitions (%% of the measured vdpbf16ps peak; "
                    "float32: of the FMA peak) ==\n");
  if (!cpu_features().avx512_bf16) {
    std::fprintf(out, "skipped: this CPU has no AVX512_BF16 (vdpbf16ps)\n");
    return;
  }
  std::fprintf(out, "vdpbf16ps peak (GFLOP/s):");
  for (const auto& [t, v] : g_bf16_peaks) std::fprintf(out, " %dt %.1f;", t, v);
  std::fprintf(out, "\n(tconv3d bf16: Layer::forward_bf16; oneDNN bf16: deconvolution_forward with bf16 "
                    "src/weights/dst "
                    "and f32 bias,\n weights rounded and reordered once outside the timed region; float32: tconv3d "
                    "xbyak. Ratios are speed ratios:\n bf16/f32 = float32 time / tconv3d bf16 time, tc/onednn = "
                    "oneDNN bf16 time / tconv3d bf16 time)\n\n");
  std::fprintf(out, "%-16s %2s %16s %16s %16s %9s %10s\n", "layer", "t", "tconv3d bf16 ms", "onednn bf16 ms",
               "float32 ms", "bf16/f32", "tc/onednn");
  std::map<int, Geomean> vs_f32, vs_onednn;
  for (int t : in.threads) {
    for (const std::string& layer : in.layers) {
      const double b = median_seconds(in, {layer, kTconv3d, t}), o = median_seconds(in, {layer, kOneDnn, t}),
                   f = median_seconds(in, {layer, kFloat32, t});
      if (std::isnan(b) && std::isnan(o) && std::isnan(f)) continue;
      const double flops = in.flops.at(layer);
      const double useful = useful_share(in, layer);
      const auto bf16_peak = g_bf16_peaks.find(t);
      const double peak = bf16_peak == g_bf16_peaks.end() ? NAN : bf16_peak->second;
      const auto f32_info = checked.find({layer, kFloat32, t});
      const double f32_peak = fma_peak(in.peaks, f32_info != checked.end() && f32_info->second.uses_zmm, t);
      if (!std::isnan(b) && !std::isnan(f)) vs_f32[t].add(f / b);
      if (!std::isnan(b) && !std::isnan(o)) vs_onednn[t].add(o / b);
      std::fprintf(out, "%-16s %2d %16s %16s %16s %9s %10s\n", layer.c_str(), t,
                   ms_cell(b, flops, useful, peak).c_str(), ms_cell(o, flops, useful, peak).c_str(),
                   ms_cell(f, flops, useful, f32_peak).c_str(), ratio_text(f, b).c_str(), ratio_text(o, b).c_str());
    }
  }
  for (int t : in.threads) {
    const Geomean a = vs_f32[t], c = vs_onednn[t];
    std::string line;
    char part[96];
    if (a.count()) {
      std::snprintf(part, sizeof part, " bf16/f32 %.2fx over %d layers;", a.value(), a.count());
      line += part;
    }
    if (c.count()) {
      std::snprintf(part, sizeof part, " tconv3d/onednn bf16 %.2fx over %d layers;", c.value(), c.count());
      line += part;
    }
    if (!line.empty()) std::fprintf(out, "geomean %d thread(s):%s\n", t, line.c_str());
  }
  std::fprintf(out, "\nbf16 checks against the float32 reference (max |error| / max(1, max |reference|); bf16 "
                    "inputs and weights: a few 1e-3 expected) and what ran:\n");
  print_checks(out, checked, in.threads.front(), "bf16/", max_error_text);
  std::string pairs;
  for (const auto& [layer, d] : g_data) {
    const auto a = d.first_output.find(kTconv3d), b = d.first_output.find(kOneDnn);
    if (a == d.first_output.end() || b == d.first_output.end()) continue;
    char part[96];
    std::snprintf(part, sizeof part, " %s %.1e;", layer.c_str(),
                  scaled_max_error(a->second.data(), b->second.data(), a->second.size()));
    pairs += part;
  }
  if (!pairs.empty())
    std::fprintf(out, "tconv3d bf16 against oneDNN bf16 (same bf16 inputs and weights; max |difference| / "
                      "max(1, max |oneDNN|), one bf16 ulp is 2^-8 relative):%s\n", pairs.c_str());
}

}  // namespace tconv3d::bench
