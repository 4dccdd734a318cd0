#include "plan/kernel_name.hpp"

#include <sstream>

#include "plan/kernel_gradient_plan.hpp"
#include "plan/plan.hpp"

namespace tconv3d::codegen {

std::string kernel_name(const KernelPlan& plan) {
  const ConvGeometry& g = plan.geometry;
  const auto& [d, h, w] = g.axes;
  std::ostringstream name;
  if (plan.pass == PlanPass::kInputGradient) {
    // Named by the layer (its input and output channels and W extents), like
    // its forward kernel; the kernel itself reads dz and writes dx.
    name << (plan.bf16() ? "tconv3d_dx_bf16_k" : "tconv3d_dx_f32_k") << d.kernel << "x" << h.kernel << "x"
         << w.kernel << "_s" << d.stride << "x"
         << h.stride << "x" << w.stride << "_d" << d.dilation << "x" << h.dilation << "x" << w.dilation << "_c"
         << g.out_channels << "to" << g.in_channels << "_w" << w.out << "to" << w.in << "c" << w.crop_begin << "__"
         << to_string(plan.isa) << "_" << plan.tile_w << "x" << plan.oc_block;
    if (plan.isa == Isa::kAvx512 && plan.lanes == 8) name << "_ymm";
    if (plan.only_group >= 0) name << "_g" << plan.only_group;
    return name.str();
  }
  name << (plan.bf16() ? "tconv3d_bf16_k" : "tconv3d_f32_k") << d.kernel << "x" << h.kernel << "x" << w.kernel << "_s"
       << d.stride << "x" << h.stride << "x" << w.stride << "_d" << d.dilation << "x" << h.dilation << "x"
       << w.dilation << "_c" << g.in_channels << "to" << g.out_channels << "_w" << w.in << "to" << w.out << "c"
       << w.crop_begin << "_"
       << (g.data_format == DataFormat::kChannelsLast ? "cl" : "cf") << "_" << plan.activation.name << "__"
       << to_string(plan.isa) << "_" << plan.tile_w << "x" << plan.oc_block;
  if (plan.w_pack > 1) name << "_p" << plan.w_pack;
  if (plan.isa == Isa::kAvx512 && plan.lanes == 8) name << "_ymm";
  if (plan.only_group >= 0) name << "_g" << plan.only_group;
  return name.str();
}

std::string kernel_gradient_name(const KernelGradientPlan& plan) {
  const ConvGeometry& g = plan.geometry;
  const auto& [d, h, w] = g.axes;
  std::ostringstream name;
  name << (plan.bf16() ? "tconv3d_dk_bf16_k" : "tconv3d_dk_f32_k") << d.kernel << "x" << h.kernel << "x" << w.kernel
       << "_s" << d.stride << "x" << h.stride << "x" << w.stride << "_d" << d.dilation << "x" << h.dilation << "x"
       << w.dilation << "_c"
       << g.in_channels << "to" << g.out_channels << "_w" << w.in << "to" << w.out << "c" << w.crop_begin << "__"
       << to_string(plan.isa) << "_" << plan.rows << "x" << plan.ci_vectors;
  return name.str();
}

}  // namespace tconv3d::codegen
