#include "runtime/kernels/reference_backward.hpp"

#include "runtime/kernels/reference_contributions.hpp"

namespace tconv3d {
void reference_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx) {
  const int64_t cin = g.in_channels, cout = g.out_channels;
  std::vector<double> acc(static_cast<size_t>(g.input_elements()), 0.0);
  for_each_contribution(g, [&](const Contribution& p) {
    const float* w = kernel + p.tap * cout * cin;
    const float* g_row = dz + p.output_voxel(g) * cout;
    double* a_row = acc.data() + p.input_voxel(g) * cin;
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t ci = 0; ci < cin; ++ci) a_row[ci] += double(g_row[co]) * double(w[co * cin + ci]);
  });
  for (size_t k = 0; k < acc.size(); ++k) dx[k] = static_cast<float>(acc[k]);
}

void reference_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk) {
  const int64_t cin = g.in_channels, cout = g.out_channels;
  std::vector<double> acc(static_cast<size_t>(g.kernel_elements()), 0.0);
  for_each_contribution(g, [&](const Contribution& p) {
    const float* x_row = x + p.input_voxel(g) * cin;
    const float* g_row = dz + p.output_voxel(g) * cout;
    double* a = acc.data() + p.tap * cout * cin;
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t ci = 0; ci < cin; ++ci) a[co * cin + ci] += double(g_row[co]) * double(x_row[ci]);
  });
  for (size_t k = 0; k < acc.size(); ++k) dk[k] = static_cast<float>(acc[k]);
}

void reference_bias_gradient(const ConvGeometry& g, const float* dz, float* db) {
  const int64_t cout = g.out_channels;
  const int64_t voxels = g.output_elements() / cout;
  std::vector<double> acc(static_cast<size_t>(cout), 0.0);
  for (int64_t v = 0; v < voxels; ++v)
    for (int64_t co = 0; co < cout; ++co) acc[co] += double(dz[v * cout + co]);
  for (int64_t co = 0; co < cout; ++co) db[co] = static_cast<float>(acc[co]);
}

namespace {

class ReferenceBackwardExecutor final : public BackwardExecutor {
 public:
  ReferenceBackwardExecutor(const Problem& problem, std::vector<float> kernel)
      : geometry_(problem.geometry), kernel_(std::move(kernel)) {}

  void input_gradient(const float* dz, float* dx, int /*threads*/) const override {
    reference_input_gradient(geometry_, kernel_.data(), dz, dx);
  }
  void kernel_gradient(const float* x, const float* dz, float* dk, int /*threads*/) const override {
    reference_kernel_gradient(geometry_, x, dz, dk);
  }
  Backend backend() const override { return Backend::kReference; }
  std::string isa() const override { return "none"; }
  std::string input_gradient_kernel_name() const override { return "reference_dx_f64_accumulate"; }
  std::string kernel_gradient_kernel_name() const override { return "reference_dk_f64_accumulate"; }

 private:
  ConvGeometry geometry_;
  std::vector<float> kernel_;
};

}  // namespace

std::unique_ptr<BackwardExecutor> make_reference_backward_executor(const Problem& problem,
                                                                   std::vector<float> kernel) {
  return std::make_unique<ReferenceBackwardExecutor>(problem, std::move(kernel));
}

}  // namespace tconv3d
