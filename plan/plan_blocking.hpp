// Internal to plan/: the steps every kernel plan shares, whatever its pass
// (make_plan, make_input_gradient_plan). A plan maker sets the geometry and
// the phases; finish_plan then decides everything sized from them, in one
// place: the channel vectors and groups, the register tile, the Cin
// unrolling, the W segments, group splitting and the displacement checks.
#pragma once

#include "plan/plan.hpp"

namespace tconv3d::codegen {

// A plan with only the ISA's lanes and registers set; throws tconv3d::Error
// unless isa is kAvx2 or kAvx512.
KernelPlan plan_skeleton(Isa isa);

// Needs isa, lanes, vector_registers, pass, geometry, w_pack, activation and
// phases set; recomputes everything else (so a finished plan may be
// finished again after a change of lanes). Throws tconv3d::Error for shapes the generated code cannot
// address (offsets beyond 32-bit displacements).
void finish_plan(KernelPlan& plan);

}  // namespace tconv3d::codegen
