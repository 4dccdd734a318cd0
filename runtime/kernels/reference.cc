#include "runtime/kernels/reference.hpp"

#include "core/activation.hpp"
#include "core/tensor_index.hpp"
#include "runtime/kernels/reference_contributions.hpp"

namespace tconv3d {

void reference_forward(const Problem& problem, const float* kernel, const float* bias,
                       const float* input, float* output) {
  const ConvGeometry& g = problem.geometry;
  const TensorIndex in_index(g.input_shape(), g.data_format);
  const TensorIndex out_index(g.output_shape(), g.data_format);
  const auto& [ad, ah, aw] = g.axes;
  const int64_t cin = g.in_channels, cout = g.out_channels;
  std::vector<double> acc(static_cast<size_t>(g.output_elements()), 0.0);

  // Scatter form: every input sample times every tap lands on one output.
  for_each_contribution(g, [&](const Contribution& p) {
    const float* w_tap = kernel + p.tap * cout * cin;
    for (int64_t f = 0; f < cout; ++f) {
      double sum = 0.0;
      for (int64_t ci = 0; ci < cin; ++ci) {
        sum += static_cast<double>(input[in_index(p.n, p.id, p.ih, p.iw, ci)]) *
               static_cast<double>(w_tap[f * cin + ci]);
      }
      acc[out_index(p.n, p.od, p.oh, p.ow, f)] += sum;
    }
  });

  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t od = 0; od < ad.out; ++od)
      for (int64_t oh = 0; oh < ah.out; ++oh)
        for (int64_t ow = 0; ow < aw.out; ++ow)
          for (int64_t f = 0; f < cout; ++f) {
            const int64_t at = out_index(n, od, oh, ow, f);
            double y = acc[at];
            if (problem.has_bias) y += static_cast<double>(bias[f]);
            output[at] = static_cast<float>(apply_elementwise(problem.fused_activation, y));
          }
}

namespace {

class ReferenceExecutor final : public Executor {
 public:
  ReferenceExecutor(const Problem& problem, std::vector<float> kernel, std::vector<float> bias)
      : problem_(problem), kernel_(std::move(kernel)), bias_(std::move(bias)) {}

  void run(const float* input, float* output, int /*threads*/) const override {
    reference_forward(problem_, kernel_.data(), problem_.has_bias ? bias_.data() : nullptr, input,
                      output);
  }
  Backend backend() const override { return Backend::kReference; }
  std::string isa() const override { return "none"; }
  std::string kernel_name() const override { return "reference_f64_accumulate"; }

 private:
  Problem problem_;
  std::vector<float> kernel_;
  std::vector<float> bias_;
};

}  // namespace

std::unique_ptr<Executor> make_reference_executor(const Problem& problem,
                                                  std::vector<float> kernel,
                                                  std::vector<float> bias) {
  return std::make_unique<ReferenceExecutor>(problem, std::move(kernel), std::move(bias));
}

}  // namespace tconv3d
