// The LLVM IR backend: against the reference on random layers and the suite
// layers, every fused activation over a wide input range, bitwise identity
// across thread counts, and the on-disk object cache (hits, a second process,
// corrupt and truncated entries, hash collisions).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <filesystem>
#include <fstream>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "emit/llvm/llvm_backend.hpp"
#include "emit/llvm/llvm_target.hpp"
#include "emit/llvm/object_cache.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"
#include "tools/support/suite.hpp"

namespace tconv3d {
namespace {

namespace fs = std::filesystem;
using llvm_backend::ObjectDiskCache;

// The object cache and target tests compile AVX2 kernels.
#define SKIP_WITHOUT_AVX2()                                                           \
  if (const std::string why = testing::why_cpu_cannot_run(Isa::kAvx2); !why.empty()) \
  GTEST_SKIP() << why

// The kernel tests run once per ISA (tests/isa_harness.hpp).
class LlvmBackend : public testing::TargetTest {};

using testing::ScopedEnv;

fs::path fresh_dir(const std::string& tag) { return testing::fresh_temp_dir("llvm_" + tag); }

TEST_P(LlvmBackend, MatchesReferenceOnRandomConfigs) {
  std::mt19937_64 rng(6060 + static_cast<int>(isa()));
  constexpr int kCases = 120;
  for (int i = 0; i < kCases; ++i) {
    const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/false);
    const double error = testing::compare_with_reference(c, options(1 + i % 2), 7000 + i);
    ASSERT_LE(error, 1e-5) << "case " << i << ": " << c.describe();
  }
}

TEST_P(LlvmBackend, SuiteLayersAtReducedSizeMatchReference) {
  const std::vector<SuiteLayer> suite = load_suite(std::string(TCONV3D_SOURCE_DIR) + "/bench/layers.json");
  ASSERT_FALSE(suite.empty());
  for (const SuiteLayer& layer : suite) {
    // The suite's configs at small spatial sizes, so the reference stays quick.
    testing::RandomCase c;
    c.config = layer.config;
    c.input_shape = layer.input_shape;
    const bool last = c.config.data_format == DataFormat::kChannelsLast;
    for (int a = 0; a < 3; ++a) c.input_shape[static_cast<size_t>(last ? 1 + a : 2 + a)] = 3 + a;
    EXPECT_LE(testing::compare_with_reference(c, options(), 99), 1e-5) << layer.name;
  }
}

// A 1x1x1 kernel of ones over one input channel makes the layer the bare
// activation: output = activation(input), tested far outside [-1, 1].
TEST_P(LlvmBackend, EveryFusedActivationMatchesItsDefinition) {
  const char* names[] = {"linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign",
                         "squareplus", "soft_shrink", "hard_shrink", "sparse_plus", "silu", "hard_silu", "gelu",
                         "tanh", "tanh_shrink", "hard_tanh", "sigmoid", "hard_sigmoid", "sparse_sigmoid",
                         "log_sigmoid", "exponential", "mish"};
  const int64_t filters = 19, voxels = 5 * 6 * 7;
  std::vector<float> input(static_cast<size_t>(voxels));
  for (int64_t i = 0; i < voxels; ++i) input[static_cast<size_t>(i)] = -12.0f + 24.0f * float(i) / float(voxels - 1);
  input[7] = 0.0f;
  input[8] = 1e-4f;
  input[9] = -3e-3f;
  const std::vector<float> kernel(static_cast<size_t>(filters), 1.0f);
  for (const char* name : names) {
    LayerConfig config;
    config.filters = filters;
    config.kernel_size = {1, 1, 1};
    config.use_bias = false;
    config.activation = parse_activation_name(name, Flavor::kKeras3);
    if (config.activation.kind == ActivationKind::kExponential) {
      for (float& x : input) x = std::min(x, 10.0f);  // keep exp's output scale comparable
    }
    const Layer layer = Layer::create(config, {1, 5, 6, 7, 1}, ConstTensor{kernel.data(), {1, 1, 1, filters, 1}},
                                      ConstTensor{}, options());
    std::vector<float> output(static_cast<size_t>(layer.output_elements()));
    layer.forward(input.data(), output.data());
    double worst = 0;
    for (int64_t v = 0; v < voxels; ++v) {
      const double expected = apply_elementwise(config.activation, double(input[static_cast<size_t>(v)]));
      for (int64_t f = 0; f < filters; ++f) {
        const double got = output[static_cast<size_t>(v * filters + f)];
        const double error = std::abs(got - expected) / std::max(1.0, std::abs(expected));
        worst = std::max(worst, error);
        ASSERT_FALSE(std::isnan(got)) << name << " at x=" << input[static_cast<size_t>(v)];
        // Keras's relu is max(x, 0): +0 below zero, never the -0 of 0 * x.
        if (config.activation.kind == ActivationKind::kRelu && got == 0.0)
          ASSERT_FALSE(std::signbit(output[static_cast<size_t>(v * filters + f)])) << "-0 at x=" << input[v];
      }
    }
    EXPECT_LE(worst, 2e-6) << name;
  }
}

TEST_P(LlvmBackend, BitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(77);
  for (int i = 0; i < 6; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 5}) {
      const Layer layer = Layer::create_initialized(c.config, c.input_shape, 5, options(threads));
      std::vector<float> out(static_cast<size_t>(layer.output_elements()));
      layer.forward(input.data(), out.data());
      if (first.empty()) first = out;
      ASSERT_EQ(0, std::memcmp(first.data(), out.data(), out.size() * sizeof(float)))
          << threads << " threads: " << c.describe();
    }
  }
}

TEST_P(LlvmBackend, ReportsItsBackendAndKernel) {
  LayerConfig config;
  config.filters = 8;
  config.kernel_size = {2, 2, 2};
  config.strides = {2, 2, 2};
  const Layer layer = Layer::create_initialized(config, {1, 3, 3, 3, 4}, 1, options());
  EXPECT_EQ(layer.backend(), Backend::kLlvm);
  EXPECT_EQ(layer.isa(), to_string(isa()));
  EXPECT_NE(layer.kernel_name().find("__llvm"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Targets, LlvmBackend, ::testing::ValuesIn(testing::targets({Backend::kLlvm})),
                         testing::target_name);

codegen::KernelPlan small_plan(int64_t filters) {
  Problem problem;
  LayerConfig config;
  config.filters = filters;
  config.kernel_size = {3, 3, 3};
  config.strides = {2, 2, 2};
  config.activation = parse_activation_name("gelu", Flavor::kKeras3);
  problem.geometry = resolve_geometry(config, {1, 4, 4, 4, 5});
  problem.fused_activation = config.activation;
  return codegen::make_plan(problem, Isa::kAvx2, codegen::PlanOptions::baseline());
}

TEST(LlvmObjectCache, SecondCompileAndSecondProcessSkipLlvm) {
  SKIP_WITHOUT_AVX2();
  const fs::path dir = fresh_dir("cache");
  const ScopedEnv env("TCONV3D_CACHE_DIR", dir.string());
  const codegen::KernelPlan plan = small_plan(13);
  const auto before = llvm_backend::llvm_stats();
  const CompiledCode first = llvm_backend::compile_row_kernel(plan);
  const auto after_first = llvm_backend::llvm_stats();
  EXPECT_EQ(after_first.compiles, before.compiles + 1);
  EXPECT_EQ(after_first.disk_stores, before.disk_stores + 1);
  ASSERT_TRUE(fs::exists(ObjectDiskCache(dir.string()).path_for(llvm_backend::llvm_kernel_key(plan))));

  const CompiledCode second = llvm_backend::compile_row_kernel(plan);
  const auto after_second = llvm_backend::llvm_stats();
  EXPECT_EQ(after_second.compiles, after_first.compiles) << "the disk cache should have skipped LLVM";
  EXPECT_EQ(after_second.disk_hits, after_first.disk_hits + 1);
  EXPECT_EQ(first.bytes, second.bytes);

  // Another process, with fresh in-memory state, finds the object on disk.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const auto start = llvm_backend::llvm_stats();
    const CompiledCode code = llvm_backend::compile_row_kernel(plan);
    const auto end = llvm_backend::llvm_stats();
    const bool ok = end.compiles == start.compiles && end.disk_hits == start.disk_hits + 1 && code.bytes == first.bytes;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the second process compiled instead of loading";
  fs::remove_all(dir);
}

// The dK kernel (ir_kernel_gradient) takes the same path: stored once, then
// loaded; its key names the LLVM emitter and this host, its name the kernel.
TEST(LlvmObjectCache, KernelGradientKernelsAreCachedToo) {
  SKIP_WITHOUT_AVX2();
  const fs::path dir = fresh_dir("dk_cache");
  const ScopedEnv env("TCONV3D_CACHE_DIR", dir.string());
  Problem problem;
  LayerConfig config;
  config.filters = 7;
  config.kernel_size = {3, 2, 3};
  config.strides = {2, 1, 2};
  config.padding = Padding::kSame;
  problem.geometry = resolve_geometry(config, {2, 3, 4, 5, 19});
  const codegen::KernelGradientPlan plan = codegen::make_kernel_gradient_plan(problem, Isa::kAvx2);
  const std::string key = llvm_backend::llvm_kernel_gradient_key(plan);
  EXPECT_EQ(0u, key.rfind("llvm-dk-ir", 0)) << key;
  EXPECT_NE(std::string::npos, key.find(plan.cache_key())) << key;
  const auto before = llvm_backend::llvm_stats();
  const CompiledCode first = llvm_backend::compile_kernel_gradient_kernel(plan);
  const auto after_first = llvm_backend::llvm_stats();
  EXPECT_EQ(after_first.compiles, before.compiles + 1);
  EXPECT_EQ(after_first.disk_stores, before.disk_stores + 1);
  ASSERT_TRUE(fs::exists(ObjectDiskCache(dir.string()).path_for(key)));
  EXPECT_EQ(codegen::kernel_gradient_name(plan) + "__llvm", first.name);
  const CompiledCode second = llvm_backend::compile_kernel_gradient_kernel(plan);
  const auto after_second = llvm_backend::llvm_stats();
  EXPECT_EQ(after_second.compiles, after_first.compiles) << "the disk cache should have skipped LLVM";
  EXPECT_EQ(after_second.disk_hits, after_first.disk_hits + 1);
  EXPECT_EQ(first.bytes, second.bytes);
  EXPECT_EQ(first.name, second.name);
  fs::remove_all(dir);
}

// The voxel-pair bf16 dK plan compiles to vdpbf16ps code (its bits against
// Xbyak's: tests/llvm_bf16_backward_test.cc); on a CPU without AVX512_BF16
// it is an error, never a crash in LLVM's instruction selection.
TEST(LlvmKernelGradient, Bf16PlanNeedsAvx512Bf16) {
  if (!detected_cpu_features().avx512) GTEST_SKIP() << "no avx512 on this CPU";
  Problem problem;
  LayerConfig config;
  config.filters = 16;
  config.kernel_size = {2, 2, 2};
  config.strides = {2, 2, 2};
  problem.geometry = resolve_geometry(config, {1, 3, 4, 5, 16});
  const codegen::KernelGradientPlan plan =
      codegen::make_kernel_gradient_plan(problem, Isa::kAvx512, DataType::kBfloat16);
  if (detected_cpu_features().avx512_bf16)
    EXPECT_EQ(codegen::kernel_gradient_name(plan) + "__llvm", llvm_backend::compile_kernel_gradient_kernel(plan).name);
  else
    EXPECT_THROW(llvm_backend::compile_kernel_gradient_kernel(plan), Error);
}

TEST(LlvmObjectCache, CorruptOrTruncatedEntriesAreIgnoredAndRebuilt) {
  SKIP_WITHOUT_AVX2();
  const fs::path dir = fresh_dir("corrupt");
  const ScopedEnv env("TCONV3D_CACHE_DIR", dir.string());
  const codegen::KernelPlan plan = small_plan(21);
  const std::string path = ObjectDiskCache(dir.string()).path_for(llvm_backend::llvm_kernel_key(plan));
  const CompiledCode good = llvm_backend::compile_row_kernel(plan);
  const auto size = fs::file_size(path);

  auto damage = [&](const std::function<void(std::string&)>& edit) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    edit(bytes);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  };
  const std::vector<std::function<void(std::string&)>> damages = {
      [](std::string& b) { b.resize(b.size() / 2); },              // truncated
      [](std::string& b) { b[b.size() - 100] ^= 0x40; },           // a flipped bit in the object
      [](std::string& b) { b[3] = 'X'; },                          // bad magic
      [](std::string& b) { b.clear(); },                           // empty
      [](std::string& b) { b += "trailing garbage"; },             // wrong size
  };
  for (size_t i = 0; i < damages.size(); ++i) {
    damage(damages[i]);
    const auto before = llvm_backend::llvm_stats();
    const CompiledCode rebuilt = llvm_backend::compile_row_kernel(plan);
    const auto after = llvm_backend::llvm_stats();
    EXPECT_EQ(after.disk_corrupt, before.disk_corrupt + 1) << "damage " << i;
    EXPECT_EQ(after.compiles, before.compiles + 1) << "damage " << i;
    EXPECT_EQ(rebuilt.bytes, good.bytes) << "damage " << i;
    EXPECT_EQ(fs::file_size(path), size) << "damage " << i << ": the entry should have been rewritten";
  }
  fs::remove_all(dir);
}

TEST(LlvmObjectCache, FileFormatChecksKeyAndChecksum) {
  const fs::path dir = fresh_dir("format");
  const ObjectDiskCache cache(dir.string());
  const std::vector<uint8_t> payload = {1, 2, 3, 4, 5};
  ASSERT_TRUE(cache.store("key-a", payload));
  bool corrupt = true;
  EXPECT_EQ(cache.load("key-a", &corrupt), payload);
  EXPECT_FALSE(corrupt);
  EXPECT_FALSE(cache.load("key-b").has_value());

  // An intact entry under another key at the same path (a hash collision) is a miss, not corrupt.
  fs::copy_file(cache.path_for("key-a"), cache.path_for("key-b"), fs::copy_options::overwrite_existing);
  EXPECT_FALSE(cache.load("key-b", &corrupt).has_value());
  EXPECT_FALSE(corrupt);

  const ObjectDiskCache disabled("");
  EXPECT_FALSE(disabled.enabled());
  EXPECT_FALSE(disabled.store("key-a", payload));
  EXPECT_FALSE(disabled.load("key-a").has_value());

  // No temporary files left behind.
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().extension(), ".tc3dobj") << entry.path();
  fs::remove_all(dir);
}

TEST(LlvmObjectCache, UnwritableDirectoryOnlyDisablesTheCache) {
  SKIP_WITHOUT_AVX2();
  const ScopedEnv env("TCONV3D_CACHE_DIR", "/proc/tconv3d-cannot-exist");
  const CompiledCode code = llvm_backend::compile_row_kernel(small_plan(3));
  EXPECT_FALSE(code.bytes.empty());
}

TEST(LlvmTarget, KeysNameEverythingThatChangesTheCode) {
  SKIP_WITHOUT_AVX2();
  const llvm_backend::LlvmTarget host = llvm_backend::host_target(Isa::kAvx2);
  EXPECT_NE(host.key().find(llvm_backend::llvm_version_string()), std::string::npos);
  EXPECT_NE(host.key().find(host.triple), std::string::npos);
  EXPECT_NE(host.key().find(host.cpu), std::string::npos);
  EXPECT_NE(host.key().find("-avx512f"), std::string::npos);
  EXPECT_EQ(host.vector_floats, 8);
  if (cpu_features().avx512) {
    const llvm_backend::LlvmTarget wide = llvm_backend::host_target(Isa::kAvx512);
    EXPECT_EQ(wide.vector_floats, 16);
    EXPECT_NE(wide.key(), host.key());
  }
  const codegen::KernelPlan plan = small_plan(8);
  EXPECT_NE(llvm_backend::llvm_kernel_key(plan).find(plan.cache_key()), std::string::npos);
}

// The host target follows the masked CPU view: with AVX-512 hidden, LLVM is
// told to emit none, and forcing it is refused.
TEST(LlvmTarget, HostTargetFollowsTheCpuMask) {
  SKIP_WITHOUT_AVX2();
  const ScopedCpuFeatureMask no_avx512(CpuFeature::kAvx512);
  const llvm_backend::LlvmTarget host = llvm_backend::host_target(Isa::kAuto);
  EXPECT_EQ(host.vector_floats, 8);
  EXPECT_EQ(host.isa_name, "avx2");
  EXPECT_NE(host.features.find("-avx512f"), std::string::npos) << host.features;
  EXPECT_EQ(host.features.find("+avx512"), std::string::npos) << host.features;
  EXPECT_THROW(llvm_backend::host_target(Isa::kAvx512), Error);
  const ScopedCpuFeatureMask no_avx2(CpuFeature::kAvx2Fma);
  EXPECT_THROW(llvm_backend::host_target(Isa::kAuto), Error);
}

TEST(LlvmTarget, AotTargetsAreCheckedWithClearErrors) {
  EXPECT_EQ(llvm_backend::aot_target("x86_64-linux-gnu", Isa::kAvx512).vector_floats, 16);
  EXPECT_EQ(llvm_backend::aot_target("x86_64-linux-gnu", Isa::kAuto).isa_name, "avx2");
  EXPECT_EQ(llvm_backend::aot_target("aarch64-linux-gnu", Isa::kAuto).isa_name, "neon");
  EXPECT_THROW(llvm_backend::aot_target("not-a-triple", Isa::kAuto), Error);
  EXPECT_THROW(llvm_backend::aot_target("riscv64-linux-gnu", Isa::kAuto), Error);
  EXPECT_THROW(llvm_backend::aot_target("x86_64-apple-darwin", Isa::kAuto), Error);
  EXPECT_THROW(llvm_backend::aot_target("aarch64-linux-gnu", Isa::kAvx2), Error);
}

}  // namespace
}  // namespace tconv3d
