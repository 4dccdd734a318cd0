#include "runtime/kernels/reference_bf16.hpp"

#include "runtime/kernels/reference.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

// Every executor but the bf16 ones: a bf16 call is a caller's mistake.
void Executor::run_bf16(const uint16_t*, uint16_t*, int) const {
  throw Error("dtype", "this layer computes in float32: use forward, not forward_bf16 (create the layer with "
                       "LayerOptions::dtype = bf16 for bf16 tensors)");
}

namespace {

std::vector<float> rounded(const float* values, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = round_to_bf16(values[i]);
  return out;
}

class ReferenceBf16Executor final : public Executor {
 public:
  ReferenceBf16Executor(const Problem& problem, const std::vector<float>& kernel, std::vector<float> bias)
      : problem_(problem), kernel_(rounded(kernel.data(), kernel.size())), bias_(std::move(bias)) {}

  void run(const float*, float*, int) const override {
    throw Error("dtype", "this layer computes in bf16: use forward_bf16, not the float32 forward");
  }
  void run_bf16(const uint16_t* input, uint16_t* output, int /*threads*/) const override {
    Problem p = problem_;
    p.dtype = DataType::kFloat32;
    const ConvGeometry& g = p.geometry;
    std::vector<float> in(static_cast<size_t>(g.input_elements())), out(static_cast<size_t>(g.output_elements()));
    for (size_t i = 0; i < in.size(); ++i) in[i] = bf16_to_float(input[i]);
    // Double accumulation, rounded once to float32 and then to bf16 (the
    // float32 step can only matter for ties, far below the tests' tolerance).
    reference_forward(p, kernel_.data(), p.has_bias ? bias_.data() : nullptr, in.data(), out.data());
    for (size_t i = 0; i < out.size(); ++i) output[i] = float_to_bf16(out[i]);
  }
  Backend backend() const override { return Backend::kReference; }
  std::string isa() const override { return "none"; }
  std::string kernel_name() const override { return "reference_bf16_f64_accumulate"; }

 private:
  Problem problem_;
  std::vector<float> kernel_;
  std::vector<float> bias_;
};

}  // namespace

void reference_forward_bf16(const Problem& problem, const float* kernel, const float* bias, const uint16_t* input,
                            uint16_t* output) {
  const ConvGeometry& g = problem.geometry;
  std::vector<float> k(kernel, kernel + g.kernel_elements());
  std::vector<float> b;
  if (bias) b.assign(bias, bias + g.out_channels);
  Problem p = problem;
  p.has_bias = bias != nullptr;
  ReferenceBf16Executor(p, k, std::move(b)).run_bf16(input, output, 1);
}

std::unique_ptr<Executor> make_reference_bf16_executor(const Problem& problem, const std::vector<float>& kernel,
                                                       std::vector<float> bias) {
  return std::make_unique<ReferenceBf16Executor>(problem, kernel, std::move(bias));
}

}  // namespace tconv3d
