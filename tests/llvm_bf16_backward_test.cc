// The bf16 backward on the LLVM backend (Layer::backward_bf16 with
// Backend::kLlvm): dx by the LLVM bf16 row kernel of the bf16 input-gradient
// plan (emit/llvm/ir_bf16_kernel), dK by the LLVM voxel-pair kernel of the
// bf16 kernel-gradient plan (emit/llvm/ir_kernel_gradient). Both read the
// same plans as the Xbyak kernels and sum every element's terms in the same
// order with the same instructions, so dx, dK and db must have the same bits
// as the Xbyak bf16 backward: on random layers (paddings, strides, dilations,
// output paddings, both data formats, odd channel counts, batch > 1,
// activations, 1 and 2 threads), with the kernels' names, the on-disk object
// cache and the dumps, and the errors for what the LLVM emitters refuse.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/bf16_input_gradient_plan.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tests/bf16_test_support.hpp"
#ifdef TCONV3D_HAVE_LLVM
#include "emit/llvm/llvm_backend.hpp"
#include "emit/llvm/object_cache.hpp"
#endif

namespace tconv3d {
namespace {

#if defined(TCONV3D_HAVE_LLVM) && defined(TCONV3D_HAVE_XBYAK)

namespace fs = std::filesystem;
using testing::RandomCase;

#define REQUIRE_BF16()                      \
  if (!detected_cpu_features().avx512_bf16) \
  GTEST_SKIP() << "this CPU lacks avx512_bf16: the bf16 backward does not run here"

using testing::bf16_options;
using testing::random_bf16;

struct Gradients {
  std::vector<uint16_t> dx;
  std::vector<float> dk, db;
  std::string kernels;
};

// One layer's bf16 backward on the Xbyak and the LLVM backend, same weights,
// x, y and dy. The outputs start from different garbage, so an element a
// kernel leaves unwritten differs.
struct Pair {
  Gradients xbyak, llvm;
};

Pair run_both(const RandomCase& c, uint64_t seed, int llvm_threads) {
  // The same seed draws the same weights for both layers.
  const Layer by_xbyak = Layer::create_initialized(c.config, c.input_shape, seed, bf16_options(Backend::kXbyak, 2));
  const Layer by_llvm =
      Layer::create_initialized(c.config, c.input_shape, seed, bf16_options(Backend::kLlvm, llvm_threads));
  std::mt19937_64 rng(seed);
  const std::vector<uint16_t> x = random_bf16(by_xbyak.geometry().input_elements(), rng);
  std::vector<uint16_t> y(static_cast<size_t>(by_xbyak.output_elements()));
  by_xbyak.forward_bf16(x.data(), y.data());
  const std::vector<uint16_t> dy = random_bf16(by_xbyak.output_elements(), rng);
  auto run = [&](const Layer& layer, uint16_t dx_fill, float fill) {
    Gradients r;
    r.dx.assign(x.size(), dx_fill);
    r.dk.assign(layer.kernel().size(), fill);
    r.db.assign(layer.bias().size(), fill);
    layer.backward_bf16(x.data(), y.data(), dy.data(), r.dx.data(), r.dk.data(), r.db.empty() ? nullptr : r.db.data());
    r.kernels = layer.backward_bf16_kernel_names();
    return r;
  };
  return {run(by_xbyak, 0x7FC1, 1.5f), run(by_llvm, 0x7FC2, -2.5f)};
}

template <typename T>
int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return int64_t(i);
  return -1;
}

int count_llvm_names(const std::string& names) {
  int count = 0;
  for (size_t at = names.find("__llvm"); at != std::string::npos; at = names.find("__llvm", at + 1)) ++count;
  return count;
}

TEST(LlvmBf16Backward, SameBitsAsXbyakOnRandomLayers) {
  REQUIRE_BF16();
  std::mt19937_64 rng(2026);
  int cases = 0, channels_first = 0, strided = 0, dilated = 0, output_padded = 0, same = 0, valid = 0, odd_cin = 0,
      odd_filters = 0, batched = 0, activated = 0;
  for (int i = 0; i < 60; ++i) {
    const RandomCase c = testing::random_case(rng);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const Pair r = run_both(c, 500 + i, 1 + i % 2);
    const std::string where = c.describe() + " kernels " + r.llvm.kernels;
    ASSERT_LT(first_difference(r.xbyak.dx, r.llvm.dx), 0) << "dx differs: " << where;
    ASSERT_LT(first_difference(r.xbyak.dk, r.llvm.dk), 0) << "dK differs: " << where;
    ASSERT_LT(first_difference(r.xbyak.db, r.llvm.db), 0) << "db differs: " << where;
    EXPECT_EQ(count_llvm_names(r.llvm.kernels), 2) << r.llvm.kernels;
    EXPECT_EQ(count_llvm_names(r.xbyak.kernels), 0) << r.xbyak.kernels;
    ++cases;
    channels_first += c.config.data_format == DataFormat::kChannelsFirst;
    strided += c.config.strides[0] > 1 || c.config.strides[1] > 1 || c.config.strides[2] > 1;
    dilated += c.config.dilation_rate[0] > 1 || c.config.dilation_rate[1] > 1 || c.config.dilation_rate[2] > 1;
    output_padded += c.config.output_padding.has_value();
    same += c.config.padding == Padding::kSame;
    valid += c.config.padding == Padding::kValid;
    odd_cin += g.in_channels % 2;
    odd_filters += g.out_channels % 2;
    batched += g.batch > 1;
    activated += c.config.activation.kind != ActivationKind::kLinear;
  }
  EXPECT_GE(cases, 40);
  EXPECT_GE(channels_first, 5);
  EXPECT_GE(strided, 10);
  EXPECT_GE(dilated, 3);
  EXPECT_GE(output_padded, 5);
  EXPECT_GE(same, 10);
  EXPECT_GE(valid, 10);
  EXPECT_GE(odd_cin, 10);
  EXPECT_GE(odd_filters, 10);
  EXPECT_GE(batched, 5);
  EXPECT_GE(activated, 10);
}

// Wider layers than random_case draws: several ci blocks (the dK kernel's
// uniform blocks and its masked tail block), several channel groups of dx,
// long W rows (interior tile loops) and kw-packed dK row tiles (few filters).
TEST(LlvmBf16Backward, SameBitsAsXbyakOnWiderLayers) {
  REQUIRE_BF16();
  struct Shape {
    int64_t filters, channels, d, h, w, k, s;
    Padding padding;
  };
  const Shape shapes[] = {{70, 53, 2, 3, 19, 3, 2, Padding::kSame},  {3, 96, 2, 2, 33, 4, 2, Padding::kValid},
                          {40, 17, 3, 2, 24, 3, 1, Padding::kSame},  {1, 5, 2, 3, 41, 2, 3, Padding::kValid},
                          {129, 33, 1, 2, 9, 2, 2, Padding::kSame}};
  int i = 0;
  for (const Shape& s : shapes) {
    RandomCase c;
    c.config.filters = s.filters;
    c.config.kernel_size = {s.k, s.k, s.k};
    c.config.strides = {s.s, s.s, s.s};
    c.config.padding = s.padding;
    c.input_shape = {2, s.d, s.h, s.w, s.channels};
    const Pair r = run_both(c, 900 + i, 1 + i % 2);
    ++i;
    const std::string where = c.describe() + " kernels " + r.llvm.kernels;
    EXPECT_LT(first_difference(r.xbyak.dx, r.llvm.dx), 0) << "dx differs: " << where;
    EXPECT_LT(first_difference(r.xbyak.dk, r.llvm.dk), 0) << "dK differs: " << where;
    EXPECT_LT(first_difference(r.xbyak.db, r.llvm.db), 0) << "db differs: " << where;
  }
}

// The plans of one layer, for the kernel-level tests below.
Problem small_bf16_problem(int64_t filters, int64_t channels) {
  LayerConfig config;
  config.filters = filters;
  config.kernel_size = {2, 3, 3};
  config.strides = {1, 2, 2};
  config.padding = Padding::kSame;
  Problem problem;
  problem.geometry = resolve_geometry(config, {1, 2, 3, 7, channels});
  problem.has_bias = false;
  problem.dtype = DataType::kBfloat16;
  return problem;
}

// The LLVM bf16 dK kernel goes through TCONV3D_CACHE_DIR like the others:
// stored once, then loaded instead of compiled; its key names the LLVM dK
// emitter and the bf16 plan, its name the bf16 kernel.
TEST(LlvmBf16Backward, KernelGradientKernelIsCachedOnDisk) {
  REQUIRE_BF16();
  const fs::path dir = testing::fresh_temp_dir("llvm_bf16_dk_cache");
  const testing::ScopedEnv env("TCONV3D_CACHE_DIR", dir.string());
  const codegen::KernelGradientPlan plan =
      codegen::make_kernel_gradient_plan(small_bf16_problem(11, 13), Isa::kAvx512, DataType::kBfloat16);
  const std::string key = llvm_backend::llvm_kernel_gradient_key(plan);
  EXPECT_EQ(0u, key.rfind("llvm-dk-ir", 0)) << key;
  EXPECT_NE(std::string::npos, key.find("dk-bf16")) << key;
  const auto before = llvm_backend::llvm_stats();
  const CompiledCode first = llvm_backend::compile_kernel_gradient_kernel(plan);
  const auto after_first = llvm_backend::llvm_stats();
  EXPECT_EQ(after_first.compiles, before.compiles + 1);
  EXPECT_EQ(after_first.disk_stores, before.disk_stores + 1);
  EXPECT_TRUE(fs::exists(llvm_backend::ObjectDiskCache(dir.string()).path_for(key)));
  EXPECT_EQ(codegen::kernel_gradient_name(plan) + "__llvm", first.name);
  EXPECT_EQ(0u, first.name.rfind("tconv3d_dk_bf16_", 0)) << first.name;
  const CompiledCode second = llvm_backend::compile_kernel_gradient_kernel(plan);
  const auto after_second = llvm_backend::llvm_stats();
  EXPECT_EQ(after_second.compiles, after_first.compiles) << "the disk cache should have skipped LLVM";
  EXPECT_EQ(after_second.disk_hits, after_first.disk_hits + 1);
  EXPECT_EQ(first.bytes, second.bytes);
  fs::remove_all(dir);
}

// TCONV3D_DUMP_DIR (and perf's maps) name both LLVM kernels of the backward.
TEST(LlvmBf16Backward, DumpsNameBothKernels) {
  REQUIRE_BF16();
  const fs::path dir = testing::fresh_temp_dir("llvm_bf16_dump");
  const testing::ScopedEnv env("TCONV3D_DUMP_DIR", dir.string());
  RandomCase c;  // a shape no other test here compiles, so its kernels are new to the kernel cache
  c.config.filters = 23;
  c.config.kernel_size = {1, 2, 5};
  c.config.strides = {1, 1, 3};
  c.input_shape = {1, 2, 2, 11, 9};
  const Pair r = run_both(c, 77, 1);
  EXPECT_LT(first_difference(r.xbyak.dx, r.llvm.dx), 0);
  EXPECT_LT(first_difference(r.xbyak.dk, r.llvm.dk), 0);
  const std::string& names = r.llvm.kernels;  // "dx kernel + dK kernel"
  const size_t plus = names.find(" + ");
  ASSERT_NE(plus, std::string::npos) << names;
  const std::string dx_name = names.substr(0, plus), dk_name = names.substr(plus + 3);
  EXPECT_EQ(0u, dx_name.rfind("tconv3d_dx_bf16_", 0)) << dx_name;
  EXPECT_EQ(0u, dk_name.rfind("tconv3d_dk_bf16_", 0)) << dk_name;
  EXPECT_TRUE(fs::exists(dir / (dx_name + ".bin"))) << dx_name;
  EXPECT_TRUE(fs::exists(dir / (dk_name + ".bin"))) << dk_name;
  fs::remove_all(dir);
}

// What the LLVM emitters do not implement is refused with an error naming
// it, never emitted as something else: an 8-lane (ymm) bf16 plan, a variant
// only the Xbyak emitter runs.
TEST(LlvmBf16Backward, RefusesPlanVariantsItDoesNotImplement) {
  REQUIRE_BF16();
  codegen::KernelPlan dx_plan = codegen::make_bf16_input_gradient_plan(small_bf16_problem(12, 10));
  EXPECT_NO_THROW(llvm_backend::compile_row_kernel(dx_plan));
  dx_plan.lanes = 8;
  try {
    llvm_backend::compile_row_kernel(dx_plan);
    ADD_FAILURE() << "an 8-lane bf16 plan was compiled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16-lane"), std::string::npos) << e.what();
  }
  codegen::KernelGradientPlan dk_plan =
      codegen::make_kernel_gradient_plan(small_bf16_problem(12, 10), Isa::kAvx512, DataType::kBfloat16);
  dk_plan.lanes = 8;
  EXPECT_THROW(llvm_backend::compile_kernel_gradient_kernel(dk_plan), Error);
}

// The generic backend has no bf16 kernels: an error naming it, at creation
// (the bf16 forward) or at the backward, never a crash.
TEST(LlvmBf16Backward, GenericBackendIsAClearError) {
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  config.use_bias = false;
  try {
    const Layer layer = Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, bf16_options(Backend::kGeneric, 1));
    std::vector<uint16_t> x(24, 0x3F80), dy(static_cast<size_t>(layer.output_elements()), 0x3F80), dx(24);
    std::vector<float> dk(layer.kernel().size());
    layer.backward_bf16(x.data(), nullptr, dy.data(), dx.data(), dk.data(), nullptr);
    ADD_FAILURE() << "the generic backend ran the bf16 backward";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generic"), std::string::npos) << e.what();
  }
}

#else
TEST(LlvmBf16Backward, NeedsLlvmAndXbyak) { GTEST_SKIP() << "built without llvm or xbyak"; }
#endif

}  // namespace
}  // namespace tconv3d
