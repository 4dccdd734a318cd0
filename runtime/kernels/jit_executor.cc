#include "runtime/kernels/jit_executor.hpp"

#ifdef TCONV3D_HAVE_XBYAK

#include <omp.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "codegen/kernel_args.hpp"
#include "codegen/kernel_name.hpp"
#include "codegen/plan.hpp"
#include "codegen/x64/tconv_emitter.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "runtime/weight_pack.hpp"

namespace tconv3d {
namespace {

constexpr int64_t kStreamOutputBytes = int64_t(2) << 20;
constexpr int64_t kSlabBytes = int64_t(256) << 10;  // channels_first scratch per thread: in L2

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
    threads = threads > 0 ? threads : omp_get_max_threads();
    if (!plan_.transpose_channels_first) {
      run_rows(input, output, threads);
      return;
    }
    // channels_first: the input goes through one channels_last copy; the
    // output is computed in blocks of rows into a cache-resident slab and
    // transposed straight into place, so it never makes an extra memory pass.
    const ConvGeometry& g = plan_.geometry;
    // The channels_last copy is kept between calls (fresh pages cost a fault
    // each); a concurrent caller that finds it taken uses its own.
    std::unique_lock<std::mutex> lock(input_cl_mutex_, std::try_to_lock);
    std::unique_ptr<float[]> own;
    float* input_cl = nullptr;
    if (lock.owns_lock()) {
      if (!input_cl_) input_cl_.reset(new float[static_cast<size_t>(g.input_elements())]);
      input_cl = input_cl_.get();
    } else {
      own.reset(new float[static_cast<size_t>(g.input_elements())]);
      input_cl = own.get();
    }
    transpose_input(input, input_cl, threads);
    run_blocks_channels_first(input_cl, output, threads);
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
    for (int64_t rd = 0; rd < sd; ++rd)
      for (int64_t od = 0; od < out_d; ++od)
        if (phase(od, g.axes[0]) == rd) d_order_.push_back(od);
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

  // NCDHW -> NDHWC, one (n, id, ih) input row per work item.
  void transpose_input(const float* input, float* input_cl, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t in_w = g.axes[2].in, rows = g.axes[0].in * g.axes[1].in, channels = g.in_channels;
    const int64_t plane = rows * in_w, items = g.batch * rows;
#pragma omp parallel for num_threads(static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(items, 1)))) \
    schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t n = item / rows, row = item % rows;
      transpose_block(input + n * channels * plane + row * in_w, plane,
                      input_cl + (n * plane + row * in_w) * channels, channels, channels, in_w, false);
    }
  }

  // Work items: (kernel, n, row in run order), kernels (channel groups) outermost.
  void run_rows(const float* input, float* output, int threads) const {
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

  // channels_first output. Work items: blocks of consecutive H rows of one
  // (kernel, n, od), channel groups outermost, D rows in phase order. A block
  // is computed into a scratch slab and transposed in one go, so each
  // channel's destination is one long run (whole cache lines, streamed when
  // large) instead of one short, line-straddling run per row.
  void run_blocks_channels_first(const float* input, float* output, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t out_d = g.axes[0].out, out_h = g.axes[1].out, out_w = g.axes[2].out;
    const int64_t out_row = out_w * g.out_channels, out_plane = out_d * out_h * out_w;
    const int64_t kernels = static_cast<int64_t>(kernels_.size()), d_rows = kernels * g.batch * out_d;
    if (d_rows == 0 || out_h == 0 || out_row == 0) return;
    // As many rows as the slab holds, but enough blocks to keep every thread busy.
    const int64_t wanted_blocks = (4 * int64_t(threads) + d_rows - 1) / d_rows;
    const int64_t block_rows =
        std::max<int64_t>(1, std::min<int64_t>(kSlabBytes / (4 * out_row), out_h / std::min(out_h, wanted_blocks)));
    const int64_t blocks_per_d = (out_h + block_rows - 1) / block_rows;
    const int64_t items = d_rows * blocks_per_d, per_kernel = g.batch * out_d * blocks_per_d;
    threads = static_cast<int>(std::min<int64_t>(threads, items));
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t group_channels = int64_t(plan_.oc_block) * plan_.lanes;
    // An output beyond the L2 is not read back soon: bypass the caches.
    const bool stream_output = 4 * g.output_elements() > kStreamOutputBytes;
#pragma omp parallel num_threads(threads)
    {
      AlignedFloats slab(static_cast<size_t>(block_rows * out_row));
      codegen::KernelArgs args{};
      args.weights = weights_.data();
      args.bias = bias_.data();
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < items; ++item) {
        const int64_t k = item / per_kernel, rest = item % per_kernel;
        const int64_t n = rest / (out_d * blocks_per_d), block = rest % (out_d * blocks_per_d);
        const int64_t od = d_order_[static_cast<size_t>(block / blocks_per_d)];
        const int64_t oh0 = block % blocks_per_d * block_rows, oh1 = std::min(out_h, oh0 + block_rows);
        const codegen::KernelFunction kernel = kernels_[static_cast<size_t>(k)];
        args.input = input + n * in_item;
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t dh = od * out_h + oh, begin = row_begin_[static_cast<size_t>(dh)];
          args.row_taps = row_taps_.data() + begin;
          args.row_tap_count = (row_begin_[static_cast<size_t>(dh) + 1] - begin) / 2;
          args.output = slab.data() + (oh - oh0) * out_row;
          kernel(&args);
        }
        // This kernel's channels [c0, c1) of the block: voxels x C -> C x voxels.
        const int64_t c0 = plan_.split_groups ? k * group_channels : 0;
        const int64_t c1 = plan_.split_groups ? std::min<int64_t>(g.out_channels, c0 + group_channels) : g.out_channels;
        transpose_block(slab.data() + c0, g.out_channels,
                        output + (n * g.out_channels + c0) * out_plane + (od * out_h + oh0) * out_w, out_plane,
                        (oh1 - oh0) * out_w, c1 - c0, stream_output);
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
  std::vector<int64_t> d_order_;    // od in D phase order (channels_first blocks)
  mutable std::mutex input_cl_mutex_;           // guards input_cl_
  mutable std::unique_ptr<float[]> input_cl_;  // channels_first only: the input, channels_last
};

}  // namespace

std::unique_ptr<Executor> make_jit_executor(const Problem& problem, const float* kernel, const float* bias,
                                            Isa isa) {
  return std::make_unique<JitExecutor>(problem, kernel, bias, isa);
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_XBYAK
