#include "runtime/kernels/jit_executor.hpp"

#ifdef TCONV3D_HAVE_XBYAK

#include <omp.h>

#include <algorithm>
#include <vector>

#include "codegen/kernel_args.hpp"
#include "codegen/kernel_name.hpp"
#include "codegen/plan.hpp"
#include "codegen/x64/tconv_emitter.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/weight_pack.hpp"

namespace tconv3d {
namespace {

// out[n][c][r] = in[n][r][c] for `batch` matrices of rows x cols, in cache-sized
// tiles spread over the threads: the channels_first layout change around the
// channels_last kernel.
void transpose_batched(const float* in, float* out, int64_t batch, int64_t rows, int64_t cols, int threads) {
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
  const int64_t tiles = batch * row_tiles * col_tiles;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n = t / (row_tiles * col_tiles), rt = t / col_tiles % row_tiles, ct = t % col_tiles;
    const float* src = in + n * rows * cols;
    float* dst = out + n * rows * cols;
    const int64_t r1 = std::min(rows, (rt + 1) * kTile), c1 = std::min(cols, (ct + 1) * kTile);
    for (int64_t c = ct * kTile; c < c1; ++c)
      for (int64_t r = rt * kTile; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
  }
}

class JitExecutor final : public Executor {
 public:
  JitExecutor(const Problem& problem, const float* kernel, const float* bias, Isa isa)
      : plan_(codegen::make_plan(problem, isa)),
        weights_(pack_weights(plan_, kernel)),
        bias_(pack_bias(plan_, problem.has_bias ? bias : nullptr)),
        name_(codegen::kernel_name(plan_)) {
    const int kernels = plan_.split_groups ? plan_.oc_groups : 1;
    for (int k = 0; k < kernels; ++k) {
      const codegen::KernelPlan plan = plan_.split_groups ? plan_.for_group(k) : plan_;
      codes_.push_back(
          KernelCache::global().get_or_compile(plan.cache_key(), [&plan] { return x64::emit_tconv_kernel(plan); }));
      kernels_.push_back(codes_.back()->function<codegen::KernelFunction>());
    }
    if (plan_.split_groups) name_ += "_per_group";
    build_row_taps();
  }

  void run(const float* input, float* output, int threads) const override {
    const ConvGeometry& g = plan_.geometry;
    std::vector<float> input_cl, output_cl;
    const float* x = input;
    float* y = output;
    threads = threads > 0 ? threads : omp_get_max_threads();
    const int64_t in_voxels = g.axes[0].in * g.axes[1].in * g.axes[2].in;
    const int64_t out_voxels = g.axes[0].out * g.axes[1].out * g.axes[2].out;
    if (plan_.transpose_channels_first) {
      input_cl.resize(static_cast<size_t>(g.input_elements()));
      transpose_batched(input, input_cl.data(), g.batch, g.in_channels, in_voxels, threads);
      output_cl.resize(static_cast<size_t>(g.output_elements()));
      x = input_cl.data();
      y = output_cl.data();
    }
    run_channels_last(x, y, threads);
    if (plan_.transpose_channels_first)
      transpose_batched(output_cl.data(), output, g.batch, out_voxels, g.out_channels, threads);
  }

  Backend backend() const override { return Backend::kXbyak; }
  std::string isa() const override { return to_string(plan_.isa); }
  std::string kernel_name() const override { return name_; }

 private:
  // For every output row (od, oh): the (input row, weight block) byte offsets
  // of the D/H taps that reach it, in tap order.
  void build_row_taps() {
    const ConvGeometry& g = plan_.geometry;
    const int64_t out_d = g.axes[0].out, out_h = g.axes[1].out;
    const int64_t row_bytes = 4 * g.axes[2].in * g.in_channels;
    row_begin_.reserve(static_cast<size_t>(out_d * out_h + 1));
    row_cost_.reserve(static_cast<size_t>(out_d * out_h));
    for (int64_t od = 0; od < out_d; ++od) {
      const auto d_taps = codegen::valid_taps(plan_, 0, od);
      for (int64_t oh = 0; oh < out_h; ++oh) {
        row_begin_.push_back(static_cast<int64_t>(row_taps_.size()));
        for (const auto& [a_d, id] : d_taps) {
          for (const auto& [a_h, ih] : codegen::valid_taps(plan_, 1, oh)) {
            row_taps_.push_back((id * g.axes[1].in + ih) * row_bytes);
            row_taps_.push_back((a_d * g.axes[1].kernel + a_h) * plan_.weights_per_dh_tap() * 4);
          }
        }
        row_cost_.push_back(codegen::row_cost(plan_, od, oh));
      }
    }
    row_begin_.push_back(static_cast<int64_t>(row_taps_.size()));
    // Rows of one (D phase, H phase) class read the same weight blocks: run
    // them one after the other so those weights stay in L2.
    const int64_t sd = g.axes[0].stride, sh = g.axes[1].stride;
    auto phase = [](int64_t o, const AxisGeometry& ax) { return ((o + ax.crop_begin) % ax.stride + ax.stride) % ax.stride; };
    for (int64_t rd = 0; rd < sd; ++rd)
      for (int64_t rh = 0; rh < sh; ++rh)
        for (int64_t od = 0; od < out_d; ++od)
          for (int64_t oh = 0; oh < out_h; ++oh)
            if (phase(od, g.axes[0]) == rd && phase(oh, g.axes[1]) == rh)
              row_order_.push_back(od * out_h + oh);
  }

  // First item of each of `parts` chunks: contiguous items of about equal cost.
  std::vector<int64_t> partition(int64_t items, int parts) const {
    const int64_t per_item = static_cast<int64_t>(row_cost_.size());
    double total = 0;
    for (int64_t c : row_cost_) total += double(c);
    total *= double(items / std::max<int64_t>(per_item, 1));
    std::vector<int64_t> first(static_cast<size_t>(parts) + 1, items);
    first[0] = 0;
    double done = 0;
    int next = 1;
    for (int64_t r = 0; r < items && next < parts; ++r) {
      while (next < parts && done >= total * next / parts) first[static_cast<size_t>(next++)] = r;
      done += double(row_cost_[static_cast<size_t>(row_order_[static_cast<size_t>(r % per_item)])]);
    }
    return first;
  }

  // Work items: (kernel, n, row in run order), kernels (channel groups) outermost.
  void run_channels_last(const float* input, float* output, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t per_item = g.axes[0].out * g.axes[1].out;
    const int64_t rows = g.batch * per_item;
    const int64_t items = rows * static_cast<int64_t>(kernels_.size());
    if (items == 0) return;
    threads = static_cast<int>(std::min<int64_t>(threads, items));
    // A few chunks of equal tap cost per thread, handed out dynamically so a
    // thread slowed by a busy core or a cold cache does not hold up the rest.
    // Which thread computes a row never changes its result.
    const int chunks = static_cast<int>(std::min<int64_t>(items, threads == 1 ? 1 : int64_t(threads) * 4));
    const std::vector<int64_t> first = partition(items, chunks);
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t out_row = g.axes[2].out * g.out_channels;
#pragma omp parallel num_threads(threads)
    {
      codegen::KernelArgs args{};
      args.weights = weights_.data();
      args.bias = bias_.data();
#pragma omp for schedule(dynamic, 1)
      for (int chunk = 0; chunk < chunks; ++chunk) {
        for (int64_t item = first[static_cast<size_t>(chunk)]; item < first[static_cast<size_t>(chunk) + 1];
             ++item) {
          const codegen::KernelFunction kernel = kernels_[static_cast<size_t>(item / rows)];
          const int64_t r = item % rows;
          const int64_t n = r / per_item, dh = row_order_[static_cast<size_t>(r % per_item)];
          const int64_t begin = row_begin_[static_cast<size_t>(dh)];
          args.input = input + n * in_item;
          args.row_taps = row_taps_.data() + begin;
          args.row_tap_count = (row_begin_[static_cast<size_t>(dh) + 1] - begin) / 2;
          args.output = output + (n * per_item + dh) * out_row;
          kernel(&args);
        }
      }
    }
  }

  codegen::KernelPlan plan_;
  AlignedFloats weights_;
  AlignedFloats bias_;
  std::string name_;
  std::vector<std::shared_ptr<const ExecutableCode>> codes_;  // one, or one per channel group
  std::vector<codegen::KernelFunction> kernels_;
  std::vector<int64_t> row_taps_;   // pairs, see KernelArgs::row_taps
  std::vector<int64_t> row_begin_;  // per (od, oh) row: index into row_taps_, plus the end
  std::vector<int64_t> row_cost_;   // per (od, oh) row
  std::vector<int64_t> row_order_;  // (od, oh) rows in the order they run
};

}  // namespace

std::unique_ptr<Executor> make_jit_executor(const Problem& problem, const float* kernel, const float* bias,
                                            Isa isa) {
  return std::make_unique<JitExecutor>(problem, kernel, bias, isa);
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_XBYAK
