#include "runtime/kernels/generic.hpp"

#include <omp.h>

#include <algorithm>

#include "runtime/activation.hpp"
#include "runtime/layout.hpp"

namespace tconv3d {
namespace {

// For one axis and each output index, the (tap, input index) pairs that reach it.
struct AxisTaps {
  std::vector<int64_t> begin;   // per output index, offset into pairs
  std::vector<std::pair<int64_t, int64_t>> pairs;  // (tap, input index)

  explicit AxisTaps(const AxisGeometry& ax) {
    begin.reserve(static_cast<size_t>(ax.out + 1));
    for (int64_t o = 0; o < ax.out; ++o) {
      begin.push_back(static_cast<int64_t>(pairs.size()));
      for (int64_t a = 0; a < ax.kernel; ++a) {
        const int64_t num = o + ax.crop_begin - a * ax.dilation;
        if (num < 0 || num % ax.stride != 0) continue;
        const int64_t i = num / ax.stride;
        if (i < ax.in) pairs.emplace_back(a, i);
      }
    }
    begin.push_back(static_cast<int64_t>(pairs.size()));
  }
};

class GenericExecutor final : public Executor {
 public:
  GenericExecutor(const Problem& problem, const float* kernel, const float* bias)
      : problem_(problem), taps_{AxisTaps(problem.geometry.axes[0]), AxisTaps(problem.geometry.axes[1]),
                                 AxisTaps(problem.geometry.axes[2])} {
    const ConvGeometry& g = problem.geometry;
    const int64_t cin = g.in_channels, cout = g.out_channels;
    const int64_t taps = g.axes[0].kernel * g.axes[1].kernel * g.axes[2].kernel;
    // Keras (tap, f, ci) -> (tap, ci, f): the f loop becomes contiguous.
    packed_.resize(static_cast<size_t>(taps * cin * cout));
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t f = 0; f < cout; ++f)
        for (int64_t ci = 0; ci < cin; ++ci)
          packed_[(t * cin + ci) * cout + f] = kernel[(t * cout + f) * cin + ci];
    bias_.assign(static_cast<size_t>(cout), 0.0f);
    if (problem.has_bias) std::copy(bias, bias + cout, bias_.begin());
  }

  void run(const float* input, float* output, int threads) const override {
    const ConvGeometry& g = problem_.geometry;
    const bool last = g.data_format == DataFormat::kChannelsLast;
    std::vector<float> input_cl, output_cl;
    const float* x = input;
    float* y = output;
    if (!last) {
      input_cl.resize(static_cast<size_t>(g.input_elements()));
      channels_first_to_last(g.input_shape(), input, input_cl.data());
      output_cl.resize(static_cast<size_t>(g.output_elements()));
      x = input_cl.data();
      y = output_cl.data();
    }
    compute_channels_last(x, y, threads);
    if (!last) channels_last_to_first(g.output_shape(), output_cl.data(), output);
  }

  Backend backend() const override { return Backend::kGeneric; }
  std::string isa() const override { return "none"; }
  std::string kernel_name() const override { return "generic_polyphase_gather"; }

 private:
  void compute_channels_last(const float* x, float* y, int threads) const {
    const ConvGeometry& g = problem_.geometry;
    const auto& [ad, ah, aw] = g.axes;
    const int64_t cin = g.in_channels, cout = g.out_channels;
    const int64_t rows = g.batch * ad.out * ah.out;
    const int nthreads = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<float> acc(static_cast<size_t>(cout));
#pragma omp for schedule(dynamic, 1)
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t oh = row % ah.out;
        const int64_t od = (row / ah.out) % ad.out;
        const int64_t n = row / (ah.out * ad.out);
        for (int64_t ow = 0; ow < aw.out; ++ow) {
          std::copy(bias_.begin(), bias_.end(), acc.begin());
          float* accp = acc.data();
          for (int64_t pd = taps_[0].begin[od]; pd < taps_[0].begin[od + 1]; ++pd) {
            const auto [a, id] = taps_[0].pairs[pd];
            for (int64_t ph = taps_[1].begin[oh]; ph < taps_[1].begin[oh + 1]; ++ph) {
              const auto [b, ih] = taps_[1].pairs[ph];
              for (int64_t pw = taps_[2].begin[ow]; pw < taps_[2].begin[ow + 1]; ++pw) {
                const auto [c, iw] = taps_[2].pairs[pw];
                const float* xv = x + (((n * ad.in + id) * ah.in + ih) * aw.in + iw) * cin;
                const float* w = packed_.data() + ((a * ah.kernel + b) * aw.kernel + c) * cin * cout;
                for (int64_t ci = 0; ci < cin; ++ci) {
                  const float xs = xv[ci];
                  const float* wr = w + ci * cout;
#pragma omp simd
                  for (int64_t f = 0; f < cout; ++f) accp[f] += xs * wr[f];
                }
              }
            }
          }
          float* out = y + (((n * ad.out + od) * ah.out + oh) * aw.out + ow) * cout;
          for (int64_t f = 0; f < cout; ++f) out[f] = apply_elementwise(problem_.fused_activation, accp[f]);
        }
      }
    }
  }

  Problem problem_;
  AxisTaps taps_[3];
  std::vector<float> packed_;
  std::vector<float> bias_;
};

}  // namespace

std::unique_ptr<Executor> make_generic_executor(const Problem& problem, const float* kernel,
                                                const float* bias) {
  return std::make_unique<GenericExecutor>(problem, kernel, bias);
}

}  // namespace tconv3d
