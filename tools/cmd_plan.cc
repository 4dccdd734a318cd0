// tconv3d plan: prints the kernel plan the xbyak backend would use for a layer.
#include <cstdio>

#include "core/cpu_features.hpp"
#include "plan/plan.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/commands.hpp"

namespace tconv3d::cli {

int plan_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--layer", "--input-shape", "--isa", "--keras-flavor", "--dtype"}, {});
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  const std::vector<int64_t> input_shape = parse_shape(args.require("--input-shape"), "--input-shape");
  Problem problem = make_problem(resolve_geometry(config, input_shape, &warnings), config.use_bias,
                                 config.activation);
  if (auto text = args.get("--dtype")) problem.dtype = parse_data_type(*text);
  print_warnings(warnings);

  // Planning is pure, so any ISA can be planned; auto is what this CPU would run.
  Isa isa = args.get("--isa") ? parse_isa(*args.get("--isa")) : Isa::kAuto;
  bool runnable = true;
  if (isa == Isa::kAuto) {
    isa = best_isa();
    if (isa == Isa::kAuto) {
      isa = Isa::kAvx2;
      runnable = false;
    }
  } else {
    const CpuFeatures& cpu = cpu_features();
    runnable = isa == Isa::kAvx512 ? cpu.avx512 : cpu.avx2_fma;
  }
  if (problem.dtype == DataType::kBfloat16) {
    if (args.get("--isa") && isa != Isa::kAvx512) throw Error("--isa", "bf16 plans are avx512 plans");
    isa = Isa::kAvx512;  // the bf16 kernels are AVX-512 code (with AVX512_BF16)
    runnable = cpu_features().avx512_bf16;
  }
  const codegen::KernelPlan plan = codegen::plan_for_backend(problem, isa, Backend::kXbyak);
  std::fputs(plan.to_string().c_str(), stdout);
  if (!config.activation.is_elementwise())
    std::printf("  note: activation %s works along the last axis and runs after the kernel\n",
                config.activation.name.c_str());
  if (!runnable)
    std::printf("  note: this CPU cannot run %s code; the plan is shown only\n",
                problem.dtype == DataType::kBfloat16 ? "avx512_bf16" : to_string(isa).c_str());
  return 0;
}

}  // namespace tconv3d::cli
