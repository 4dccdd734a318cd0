#include "plan/row_taps.hpp"

#include <algorithm>

namespace tconv3d {
namespace {

// The forward pass's D/H phase of output o (rows of one phase class read the
// same weight blocks). An input-gradient row reads every tap: one class.
int64_t phase_of(const codegen::KernelPlan& plan, int axis, int64_t o) {
  if (plan.pass == codegen::PlanPass::kInputGradient) return 0;
  const AxisGeometry& ax = plan.geometry.axes[axis];
  return ((o + ax.crop_begin) % ax.stride + ax.stride) % ax.stride;
}

int64_t phase_classes(const codegen::KernelPlan& plan, int axis) {
  return plan.pass == codegen::PlanPass::kInputGradient ? 1 : plan.geometry.axes[axis].stride;
}

}  // namespace

RowTaps build_row_taps(const codegen::KernelPlan& plan) {
  const ConvGeometry& g = plan.geometry;
  const int64_t out_d = g.axes[0].out, out_h = g.axes[1].out;
  const int64_t row_bytes = plan.element_bytes() * g.axes[2].in * g.in_channels;
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
  t.order.reserve(static_cast<size_t>(out_d * out_h));
  for (int64_t rd = 0; rd < phase_classes(plan, 0); ++rd)
    for (int64_t rh = 0; rh < phase_classes(plan, 1); ++rh)
      for (int64_t od = 0; od < out_d; ++od)
        for (int64_t oh = 0; oh < out_h; ++oh)
          if (phase_of(plan, 0, od) == rd && phase_of(plan, 1, oh) == rh) t.order.push_back(od * out_h + oh);
  for (int64_t rd = 0; rd < phase_classes(plan, 0); ++rd)
    for (int64_t od = 0; od < out_d; ++od)
      if (phase_of(plan, 0, od) == rd) t.d_order.push_back(od);
  return t;
}

}  // namespace tconv3d
