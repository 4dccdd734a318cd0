// The LLVM backend's executor: the same plan, packed weights, row list and
// thread partition as the Xbyak executor (runtime/kernels/jit_executor.cc),
// with the row kernel compiled by LLVM. Every row is computed by the same code
// in the same order whatever the thread count: bitwise identical results.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "codegen/kernel_args.hpp"
#include "codegen/kernel_name.hpp"
#include "codegen/llvm/llvm_backend.hpp"
#include "codegen/llvm/row_taps.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/layout.hpp"
#include "runtime/weight_pack.hpp"

namespace tconv3d::llvm_backend {
namespace {

class LlvmExecutor final : public Executor {
 public:
  LlvmExecutor(const Problem& problem, const float* kernel, const float* bias, Isa isa)
      : plan_(codegen::make_plan(problem, isa, codegen::PlanOptions::baseline())),
        weights_(pack_weights(plan_, kernel)),
        bias_(pack_bias(plan_, problem.has_bias ? bias : nullptr)),
        rows_(build_row_taps(plan_)),
        name_(codegen::kernel_name(plan_) + "__llvm") {
    code_ = KernelCache::global().get_or_compile(llvm_kernel_key(plan_), [this] { return compile_row_kernel(plan_); });
    kernel_ = code_->function<codegen::KernelFunction>();
  }

  void run(const float* input, float* output, int threads) const override {
    const ConvGeometry& g = plan_.geometry;
    std::vector<float> input_cl, output_cl;
    const float* x = input;
    float* y = output;
    if (plan_.transpose_channels_first) {
      input_cl.resize(static_cast<size_t>(g.input_elements()));
      channels_first_to_last(g.input_shape(), input, input_cl.data());
      output_cl.resize(static_cast<size_t>(g.output_elements()));
      x = input_cl.data();
      y = output_cl.data();
    }
    run_channels_last(x, y, threads > 0 ? threads : omp_get_max_threads());
    if (plan_.transpose_channels_first) channels_last_to_first(g.output_shape(), output_cl.data(), output);
  }

  Backend backend() const override { return Backend::kLlvm; }
  std::string isa() const override { return to_string(plan_.isa); }
  std::string kernel_name() const override { return name_; }

 private:
  void run_channels_last(const float* input, float* output, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t per_item = g.axes[0].out * g.axes[1].out;
    const int64_t rows = g.batch * per_item;
    if (rows == 0) return;
    threads = static_cast<int>(std::min<int64_t>(threads, rows));
    const std::vector<int64_t> first = partition_rows(rows_, rows, threads);
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t out_row = g.axes[2].out * g.out_channels;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      codegen::KernelArgs args{};
      args.weights = weights_.data();
      args.bias = bias_.data();
      for (int64_t r = first[static_cast<size_t>(t)]; r < first[static_cast<size_t>(t) + 1]; ++r) {
        const int64_t n = r / per_item, dh = r % per_item;
        const int64_t begin = rows_.begin[static_cast<size_t>(dh)];
        args.input = input + n * in_item;
        args.row_taps = rows_.pairs.data() + begin;
        args.row_tap_count = (rows_.begin[static_cast<size_t>(dh) + 1] - begin) / 2;
        args.output = output + r * out_row;
        kernel_(&args);
      }
    }
  }

  codegen::KernelPlan plan_;
  AlignedFloats weights_;
  AlignedFloats bias_;
  RowTaps rows_;
  std::string name_;
  std::shared_ptr<const ExecutableCode> code_;
  codegen::KernelFunction kernel_ = nullptr;
};

}  // namespace

std::unique_ptr<Executor> make_llvm_executor(const Problem& problem, const float* kernel, const float* bias, Isa isa) {
  return std::make_unique<LlvmExecutor>(problem, kernel, bias, isa);
}

}  // namespace tconv3d::llvm_backend
