// One test, every target: each backend this build has, on each ISA it can run
// (Highway's model). Every host lists the same targets; one whose ISA this CPU
// lacks skips itself with a message. While a test runs, the features above its
// target's ISA are hidden (ScopedCpuFeatureMask), so whatever is chosen
// automatically inside it (the ISA, the generic kernel's code) is the target's.
//
//   class MyTest : public testing::TargetTest {};
//   TEST_P(MyTest, Works) { ... Layer::create(..., options()) ... }
//   INSTANTIATE_TEST_SUITE_P(Targets, MyTest,
//                            ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
//                            testing::target_name);
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "runtime/kernels/generic_microkernel.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d::testing {

struct Target {
  Backend backend = Backend::kReference;
  // kAuto: no vector ISA (the reference, and the generic kernel's SSE2 code).
  Isa isa = Isa::kAuto;

  std::string name() const;                    // "xbyak_avx512", "generic_sse2", "reference"
  std::string isa_name() const;                // what Layer::isa() reports: "avx512", "sse2", "none"
  int64_t lanes() const;                       // floats per vector: 16, 8, 4 (SSE2), 1 (reference)
  generic::GenericIsa generic_isa() const;     // the generic kernel's code for this ISA
  LayerOptions options(int threads = 1) const;  // backend and ISA forced
};

// GoogleTest prints a parameter with this (and CTest lists it): the name.
void PrintTo(const Target& target, std::ostream* os);

// The targets of `backends` in this build: xbyak and llvm on avx2 and avx512
// (where built), generic on sse2, avx2 and avx512, the reference once.
std::vector<Target> targets(std::initializer_list<Backend> backends);

// Every x86 ISA the library knows, whatever this CPU runs: for tests that run
// nothing (plans) or check what happens where the ISA is missing (masked), so
// they run, and none skips, on every host.
std::vector<Isa> all_isas();
std::string isa_name(const ::testing::TestParamInfo<Isa>& info);  // for INSTANTIATE_TEST_SUITE_P

// Why this CPU (as cpu_features() shows it) cannot run `isa`; empty if it can.
std::string why_cpu_cannot_run(Isa isa);

// For INSTANTIATE_TEST_SUITE_P: the target's name.
std::string target_name(const ::testing::TestParamInfo<Target>& info);

// Base fixture of a test instantiated over targets().
class TargetTest : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override;
  const Target& target() const { return GetParam(); }
  LayerOptions options(int threads = 1) const { return target().options(threads); }
  Isa isa() const { return target().isa; }

 private:
  std::optional<ScopedCpuFeatureMask> hide_wider_;
};

}  // namespace tconv3d::testing
