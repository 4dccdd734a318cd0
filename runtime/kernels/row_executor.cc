#include "runtime/kernels/row_executor.hpp"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "core/kernel_args.hpp"
#include "plan/row_taps.hpp"
#include "runtime/kernels/bf16_transpose.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "runtime/kernels/work_split.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

constexpr int64_t kStreamOutputBytes = int64_t(2) << 20;
constexpr int64_t kSlabBytes = int64_t(256) << 10;  // channels_first scratch per thread: in L2
// Packed weights up to this size stay in L2 whatever rows run: the rows then
// run in memory order (see run_order()).
constexpr int64_t kWeightsInL2Bytes = int64_t(256) << 10;

class RowExecutor final : public Executor {
 public:
  RowExecutor(codegen::KernelPlan plan, WeightStore& weights, Backend backend, const std::string& name,
              const RowKernelCompiler& compile)
      : plan_(std::move(plan)),
        packed_(weights.packed_for(plan_)),
        rows_(build_row_taps(plan_)),
        backend_(backend),
        name_(plan_.split_groups ? name + "_per_group" : name) {
    const int kernels = plan_.split_groups ? plan_.oc_groups : 1;
    codes_.resize(static_cast<size_t>(kernels));
    // Per-group kernels compile side by side (LLVM takes ~20 ms each); the
    // first error, if any, is rethrown here.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(kernels));
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min(kernels, omp_get_max_threads())))
    for (int k = 0; k < kernels; ++k) {
      try {
        codes_[static_cast<size_t>(k)] = compile(plan_.split_groups ? plan_.for_group(k) : plan_);
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    for (const auto& code : codes_) kernels_.push_back(code->function<codegen::KernelFunction>());
    order_ = run_order();
    for (int64_t dh : order_) order_cost_.push_back(rows_.cost[static_cast<size_t>(dh)]);
  }

  void run_bf16(const uint16_t* input, uint16_t* output, int threads) const override {
    if (!plan_.bf16()) return Executor::run_bf16(input, output, threads);  // the float32 layer's error
    threads = threads > 0 ? threads : omp_get_max_threads();
    if (!plan_.transpose_channels_first) {
      run_rows(input, output, threads);
      return;
    }
    // channels_first: as float32 (run()), one channels_last input copy, the
    // output computed in slabs and transposed into place.
    const ConvGeometry& g = plan_.geometry;
    std::unique_lock<std::mutex> lock(bf16_cl_mutex_, std::try_to_lock);
    std::unique_ptr<uint16_t[]> own;
    uint16_t* input_cl = nullptr;
    if (lock.owns_lock()) {
      if (!bf16_input_cl_) bf16_input_cl_.reset(new uint16_t[static_cast<size_t>(g.input_elements())]);
      input_cl = bf16_input_cl_.get();
    } else {
      own.reset(new uint16_t[static_cast<size_t>(g.input_elements())]);
      input_cl = own.get();
    }
    transpose_input(input, input_cl, threads);
    run_blocks_channels_first(static_cast<const uint16_t*>(input_cl), output, threads);
  }

  void run(const float* input, float* output, int threads) const override {
    if (plan_.bf16()) throw Error("dtype", "this layer computes in bf16: use forward_bf16, not the float32 forward");
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

  Backend backend() const override { return backend_; }
  std::string isa() const override { return to_string(plan_.isa); }
  std::string kernel_name() const override { return name_; }

 private:
  // NCDHW -> NDHWC, one (n, id, ih) input row per work item.
  template <typename T>
  void transpose_input(const T* input, T* input_cl, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t in_w = g.axes[2].in, rows = g.axes[0].in * g.axes[1].in, channels = g.in_channels;
    const int64_t plane = rows * in_w, items = g.batch * rows;
#pragma omp parallel for num_threads(static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(items, 1)))) \
    schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t n = item / rows, row = item % rows;
      transpose_any(input + n * channels * plane + row * in_w, plane, input_cl + (n * plane + row * in_w) * channels,
                    channels, channels, in_w, false);
    }
  }

  // The rows od*out_h + oh of one batch item in the order they run. Memory
  // order where the packed weights stay in L2 anyway: a thread's chunks are
  // then one contiguous stretch of output, and no two threads write
  // neighbouring rows (phase order interleaves the threads' rows in memory;
  // k3s2_op1_odd, batch 1, 2 threads: 221 us of thread time against 180 us
  // in memory order). Larger weights run in phase order (rows_.order), so
  // the weight blocks of one phase class stay in L2 while its rows run.
  std::vector<int64_t> run_order() const {
    const int64_t weight_bytes = static_cast<int64_t>(packed_->weights.size() * sizeof(float));
    if (weight_bytes > kWeightsInL2Bytes) return rows_.order;
    std::vector<int64_t> order(rows_.order.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    return order;
  }

  // The split (split_work) among `threads` threads, computed once per thread
  // count: a call does not pay for the cost sums.
  std::shared_ptr<const WorkSplit> split_for(int threads, int64_t items) const {
    std::lock_guard<std::mutex> lock(splits_mutex_);
    auto& slot = splits_[threads];
    if (!slot) slot = std::make_shared<const WorkSplit>(split_work(order_cost_, items, threads));
    return slot;
  }

  // Work items: (kernel, n, row in run order), kernels (channel groups)
  // outermost. Each thread owns an equal-cost contiguous run of chunks and
  // helps the others at the end (work_split.hpp); which thread computes a
  // row never changes its result.
  // T: float, or uint16_t for bf16 (the kernel reads the plan's dtype).
  template <typename T>
  void run_rows(const T* input, T* output, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t per_item = g.axes[0].out * g.axes[1].out;
    const int64_t rows = g.batch * per_item;
    const int64_t items = rows * static_cast<int64_t>(kernels_.size());
    if (items == 0) return;
    threads = static_cast<int>(std::min<int64_t>(threads, items));
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t out_row = g.axes[2].out * g.out_channels;
    // Items [begin, end): (kernel k, batch item n, row j in run order),
    // counted up without a division per row.
    auto run_items = [&](codegen::KernelArgs& args, int64_t begin, int64_t end) {
      if (begin >= end) return;
      int64_t k = begin / rows, n = begin % rows / per_item, j = begin % per_item;
      for (int64_t item = begin; item < end; ++item) {
        const int64_t dh = order_[static_cast<size_t>(j)];
        args.input = reinterpret_cast<const float*>(input + n * in_item);
        args.row_taps = rows_.pairs_of(dh);
        args.row_tap_count = rows_.taps_of(dh);
        args.output = reinterpret_cast<float*>(output + (n * per_item + dh) * out_row);
        kernels_[static_cast<size_t>(k)](&args);
        if (++j == per_item) {
          j = 0;
          if (++n == g.batch) n = 0, ++k;
        }
      }
    };
    codegen::KernelArgs args{};
    args.weights = packed_->weights.data();
    args.bias = packed_->bias.data();
    if (threads == 1) {  // no parallel region, no chunks
      run_items(args, 0, items);
      return;
    }
    const std::shared_ptr<const WorkSplit> split = split_for(threads, items);
    const std::vector<int64_t>& first = split->first;
    ChunkQueue queue(*split);
    // OpenMP may give fewer threads than asked (nested regions, thread
    // limits): the runs of the missing ones are then taken as steals.
#pragma omp parallel num_threads(threads) firstprivate(args)
    {
      const int part = omp_get_thread_num();
      for (int chunk = queue.next(part); chunk >= 0; chunk = queue.next(part))
        run_items(args, first[static_cast<size_t>(chunk)], first[static_cast<size_t>(chunk) + 1]);
    }
  }

  // channels_first output. Work items: blocks of consecutive H rows of one
  // (kernel, n, od), channel groups outermost, D rows in phase order. A block
  // is computed into a scratch slab and transposed in one go, so each
  // channel's destination is one long run (whole cache lines, streamed when
  // large) instead of one short, line-straddling run per row. The blocks go
  // to whichever thread is free: here the owned runs of run_rows measured 1 %
  // slower (unet_up_k2s2_cf, 2 threads, 2.72 -> 2.76 ms).
  template <typename T>
  void run_blocks_channels_first(const T* input, T* output, int threads) const {
    const ConvGeometry& g = plan_.geometry;
    const int64_t out_d = g.axes[0].out, out_h = g.axes[1].out, out_w = g.axes[2].out;
    const int64_t out_row = out_w * g.out_channels, out_plane = out_d * out_h * out_w;
    const int64_t kernels = static_cast<int64_t>(kernels_.size()), d_rows = kernels * g.batch * out_d;
    if (d_rows == 0 || out_h == 0 || out_row == 0) return;
    // As many rows as the slab holds, but enough blocks to keep every thread busy.
    const int64_t wanted_blocks = (4 * int64_t(threads) + d_rows - 1) / d_rows;
    const int64_t slab_rows = kSlabBytes / (int64_t(sizeof(T)) * out_row);
    const int64_t block_rows =
        std::max<int64_t>(1, std::min<int64_t>(slab_rows, out_h / std::min(out_h, wanted_blocks)));
    const int64_t blocks_per_d = (out_h + block_rows - 1) / block_rows;
    const int64_t items = d_rows * blocks_per_d, per_kernel = g.batch * out_d * blocks_per_d;
    threads = static_cast<int>(std::min<int64_t>(threads, items));
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t group_channels = int64_t(plan_.oc_block) * plan_.lanes;
    // An output beyond the L2 is not read back soon: bypass the caches.
    const bool stream_output = int64_t(sizeof(T)) * g.output_elements() > kStreamOutputBytes;
#pragma omp parallel num_threads(threads)
    {
      AlignedFloats slab(static_cast<size_t>(block_rows * out_row));  // >= block_rows * out_row elements of T
      T* const slab_data = reinterpret_cast<T*>(slab.data());
      codegen::KernelArgs args{};
      args.weights = packed_->weights.data();
      args.bias = packed_->bias.data();
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < items; ++item) {
        const int64_t k = item / per_kernel, rest = item % per_kernel;
        const int64_t n = rest / (out_d * blocks_per_d), block = rest % (out_d * blocks_per_d);
        const int64_t od = rows_.d_order[static_cast<size_t>(block / blocks_per_d)];
        const int64_t oh0 = block % blocks_per_d * block_rows, oh1 = std::min(out_h, oh0 + block_rows);
        const codegen::KernelFunction kernel = kernels_[static_cast<size_t>(k)];
        args.input = reinterpret_cast<const float*>(input + n * in_item);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t dh = od * out_h + oh;
          args.row_taps = rows_.pairs_of(dh);
          args.row_tap_count = rows_.taps_of(dh);
          args.output = reinterpret_cast<float*>(slab_data + (oh - oh0) * out_row);
          kernel(&args);
        }
        // This kernel's channels [c0, c1) of the block: voxels x C -> C x voxels.
        const int64_t c0 = plan_.split_groups ? k * group_channels : 0;
        const int64_t c1 = plan_.split_groups ? std::min<int64_t>(g.out_channels, c0 + group_channels) : g.out_channels;
        transpose_any(slab_data + c0, g.out_channels,
                      output + (n * g.out_channels + c0) * out_plane + (od * out_h + oh0) * out_w, out_plane,
                      (oh1 - oh0) * out_w, c1 - c0, stream_output);
      }
    }
  }

  // The 2-D transposes of the channels_first path, per element type.
  static void transpose_any(const float* src, int64_t ss, float* dst, int64_t ds, int64_t rows, int64_t cols,
                            bool stream) {
    transpose_block(src, ss, dst, ds, rows, cols, stream);
  }
  static void transpose_any(const uint16_t* src, int64_t ss, uint16_t* dst, int64_t ds, int64_t rows, int64_t cols,
                            bool /*stream*/) {
    transpose_block_u16(src, ss, dst, ds, rows, cols);
  }

  codegen::KernelPlan plan_;
  std::shared_ptr<const PackedWeights> packed_;  // shared by every shape of the layer
  RowTaps rows_;
  Backend backend_;
  std::string name_;
  std::vector<std::shared_ptr<const ExecutableCode>> codes_;  // one, or one per channel group
  std::vector<codegen::KernelFunction> kernels_;
  std::vector<int64_t> order_;       // channels_last rows of a batch item in run order (run_order())
  std::vector<int64_t> order_cost_;  // their costs (codegen::row_cost), in that order
  mutable std::mutex splits_mutex_;  // guards splits_
  mutable std::map<int, std::shared_ptr<const WorkSplit>> splits_;  // by thread count
  mutable std::mutex input_cl_mutex_;           // guards input_cl_
  mutable std::unique_ptr<float[]> input_cl_;  // channels_first only: the input, channels_last
  mutable std::mutex bf16_cl_mutex_;                     // guards bf16_input_cl_
  mutable std::unique_ptr<uint16_t[]> bf16_input_cl_;  // bf16 channels_first: the input, channels_last
};

}  // namespace

std::unique_ptr<Executor> make_row_executor(codegen::KernelPlan plan, WeightStore& weights, Backend backend,
                                            const std::string& name, const RowKernelCompiler& compile) {
  return std::make_unique<RowExecutor>(std::move(plan), weights, backend, name, compile);
}

}  // namespace tconv3d
