#include "runtime/kernels/reference_backward.hpp"

#include "core/tensor_index.hpp"

namespace tconv3d {
namespace {

// Calls visit(n, i_flat, o_flat, tap) for every pair of an input voxel and a
// kernel tap that lands inside the output: the one loop nest both products
// share. Flat indices count voxels (channels_last, channel 0).
template <typename Visit>
void for_each_contribution(const ConvGeometry& g, Visit&& visit) {
  const auto& [ad, ah, aw] = g.axes;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < ad.in; ++id)
      for (int64_t ih = 0; ih < ah.in; ++ih)
        for (int64_t iw = 0; iw < aw.in; ++iw)
          for (int64_t a = 0; a < ad.kernel; ++a)
            for (int64_t b = 0; b < ah.kernel; ++b)
              for (int64_t c = 0; c < aw.kernel; ++c) {
                const int64_t od = id * ad.stride + a * ad.dilation - ad.crop_begin;
                const int64_t oh = ih * ah.stride + b * ah.dilation - ah.crop_begin;
                const int64_t ow = iw * aw.stride + c * aw.dilation - aw.crop_begin;
                if (od < 0 || od >= ad.out || oh < 0 || oh >= ah.out || ow < 0 || ow >= aw.out) continue;
                const int64_t i_flat = ((n * ad.in + id) * ah.in + ih) * aw.in + iw;
                const int64_t o_flat = ((n * ad.out + od) * ah.out + oh) * aw.out + ow;
                visit(i_flat, o_flat, (a * ah.kernel + b) * aw.kernel + c);
              }
}

}  // namespace

void reference_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx) {
  const int64_t cin = g.in_channels, cout = g.out_channels;
  std::vector<double> acc(static_cast<size_t>(g.input_elements()), 0.0);
  for_each_contribution(g, [&](int64_t i, int64_t o, int64_t tap) {
    const float* w = kernel + tap * cout * cin;
    const float* g_row = dz + o * cout;
    double* a_row = acc.data() + i * cin;
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t ci = 0; ci < cin; ++ci) a_row[ci] += double(g_row[co]) * double(w[co * cin + ci]);
  });
  for (size_t k = 0; k < acc.size(); ++k) dx[k] = static_cast<float>(acc[k]);
}

void reference_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk) {
  const int64_t cin = g.in_channels, cout = g.out_channels;
  std::vector<double> acc(static_cast<size_t>(g.kernel_elements()), 0.0);
  for_each_contribution(g, [&](int64_t i, int64_t o, int64_t tap) {
    const float* x_row = x + i * cin;
    const float* g_row = dz + o * cout;
    double* a = acc.data() + tap * cout * cin;
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
