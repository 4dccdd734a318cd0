#include "tests/isa_harness.hpp"

namespace tconv3d::testing {

std::string Target::name() const {
  if (backend == Backend::kReference) return "reference";
  return to_string(backend) + "_" + isa_name();
}

std::string Target::isa_name() const {
  if (backend == Backend::kReference) return "none";
  return isa == Isa::kAuto ? "sse2" : to_string(isa);
}

int64_t Target::lanes() const {
  if (backend == Backend::kReference) return 1;
  return isa == Isa::kAvx512 ? 16 : isa == Isa::kAvx2 ? 8 : 4;
}

generic::GenericIsa Target::generic_isa() const {
  return isa == Isa::kAvx512 ? generic::GenericIsa::kAvx512
         : isa == Isa::kAvx2 ? generic::GenericIsa::kAvx2
                             : generic::GenericIsa::kSse2;
}

LayerOptions Target::options(int threads) const {
  LayerOptions o;
  o.backend = backend;
  // The SSE2 baseline cannot be forced through LayerOptions: TargetTest hides
  // AVX2 for it, so the automatic choice is SSE2.
  o.isa = isa;
  o.threads = threads;
  return o;
}

void PrintTo(const Target& target, std::ostream* os) { *os << target.name(); }

std::vector<Target> targets(std::initializer_list<Backend> backends) {
  std::vector<Target> list;
  for (Backend backend : backends) {
    switch (backend) {
      case Backend::kReference: list.push_back({backend, Isa::kAuto}); break;
      case Backend::kGeneric:
        for (Isa isa : {Isa::kAuto, Isa::kAvx2, Isa::kAvx512}) list.push_back({backend, isa});
        break;
      case Backend::kXbyak:
#ifdef TCONV3D_HAVE_XBYAK
        for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) list.push_back({backend, isa});
#endif
        break;
      case Backend::kLlvm:
#ifdef TCONV3D_HAVE_LLVM
        for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) list.push_back({backend, isa});
#endif
        break;
      case Backend::kAuto: ADD_FAILURE() << "targets(): name the backends to test, not auto"; break;
    }
  }
  return list;
}

std::vector<Isa> all_isas() { return {Isa::kAvx2, Isa::kAvx512}; }

std::string isa_name(const ::testing::TestParamInfo<Isa>& info) { return to_string(info.param); }

std::string why_cpu_cannot_run(Isa isa) {
  const CpuFeatures cpu = cpu_features();
  if (isa == Isa::kAvx512 && !cpu.avx512)
    return "this CPU (" + cpu.brand + ") cannot run AVX-512 F/BW/VL/DQ (or it is hidden): avx512 not tested here";
  if (isa == Isa::kAvx2 && !cpu.avx2_fma)
    return "this CPU (" + cpu.brand + ") cannot run AVX2+FMA (or it is hidden): avx2 not tested here";
  return "";
}

std::string target_name(const ::testing::TestParamInfo<Target>& info) { return info.param.name(); }

void TargetTest::SetUp() {
  const std::string why = why_cpu_cannot_run(isa());
  if (!why.empty()) GTEST_SKIP() << why;
  if (target().backend == Backend::kReference) return;
  if (isa() == Isa::kAuto) hide_wider_.emplace(CpuFeature::kAvx2Fma);
  if (isa() == Isa::kAvx2) hide_wider_.emplace(CpuFeature::kAvx512);
}

}  // namespace tconv3d::testing
