#include "codegen/llvm/row_taps.hpp"

#include <algorithm>

namespace tconv3d::llvm_backend {

RowTaps build_row_taps(const codegen::KernelPlan& plan) {
  const ConvGeometry& g = plan.geometry;
  const int64_t out_d = g.axes[0].out, out_h = g.axes[1].out;
  const int64_t row_bytes = 4 * g.axes[2].in * g.in_channels;
  RowTaps t;
  t.begin.reserve(static_cast<size_t>(out_d * out_h + 1));
  t.cost.reserve(static_cast<size_t>(out_d * out_h));
  for (int64_t od = 0; od < out_d; ++od) {
    const auto d_taps = codegen::valid_taps(plan, 0, od);
    for (int64_t oh = 0; oh < out_h; ++oh) {
      t.begin.push_back(static_cast<int64_t>(t.pairs.size()));
      const auto h_taps = codegen::valid_taps(plan, 1, oh);
      for (const auto& [a_d, id] : d_taps) {
        for (const auto& [a_h, ih] : h_taps) {
          t.pairs.push_back((id * g.axes[1].in + ih) * row_bytes);
          t.pairs.push_back((a_d * g.axes[1].kernel + a_h) * plan.weights_per_dh_tap() * 4);
        }
      }
      t.cost.push_back(codegen::row_cost(plan, od, oh));
    }
  }
  t.begin.push_back(static_cast<int64_t>(t.pairs.size()));
  return t;
}

std::vector<int64_t> partition_rows(const RowTaps& taps, int64_t rows, int threads) {
  const int64_t per_item = std::max<int64_t>(1, static_cast<int64_t>(taps.cost.size()));
  double total = 0;
  for (int64_t c : taps.cost) total += double(c);
  total *= double(rows / per_item);
  std::vector<int64_t> first(static_cast<size_t>(threads) + 1, rows);
  first[0] = 0;
  double done = 0;
  int next = 1;
  for (int64_t r = 0; r < rows && next < threads; ++r) {
    while (next < threads && done >= total * next / threads) first[static_cast<size_t>(next++)] = r;
    done += double(taps.cost[static_cast<size_t>(r % per_item)]);
  }
  return first;
}

}  // namespace tconv3d::llvm_backend
