// bf16 forward (LayerOptions::dtype = bf16): the Xbyak vdpbf16ps kernel
// against the bf16 reference (bf16-rounded input and weights, double
// accumulation, bf16 output) on random layers, NaN/Inf propagation, the odd
// Cin tail, the errors for what bf16 does not run, and float32 untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/kernel_name.hpp"
#include "plan/plan.hpp"
#include "plan/weight_pack.hpp"
#include "runtime/kernels/bf16_transpose.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/layer.hpp"
#include "tests/bf16_test_support.hpp"
#include "tests/test_support.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d {
namespace {

using testing::bf16_options;
using testing::Bf16Outputs;
using testing::channels_last;
using testing::config_of;
using testing::first_bf16_mismatch;
using testing::have_bf16;
using testing::random_bf16;
using testing::RandomCase;

#define REQUIRE_BF16() \
  if (!have_bf16()) GTEST_SKIP() << "this CPU lacks avx512_bf16"

// The Xbyak bf16 layer (on `threads`) against the bf16 reference.
Bf16Outputs run_both(const RandomCase& c, uint64_t seed, const testing::Bf16Edit& edit = {}, int threads = 1) {
  return testing::run_bf16_pair(c, seed, Backend::kXbyak, Backend::kReference, threads, edit);
}

TEST(Bf16, RandomLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  double worst = 0;
  testing::expect_random_layers_match(Backend::kXbyak, 1717, 1, "", &worst);
  RecordProperty("worst_error_over_tolerance", std::to_string(worst));
}

TEST(Bf16, ChannelsFirstLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(4242);
  int channels_first = 0;
  for (int i = 0; i < 80 && channels_first < 25; ++i) {
    const RandomCase c = testing::random_case(rng);
    if (c.config.data_format != DataFormat::kChannelsFirst) continue;
    ++channels_first;
    for (int threads : {1, 2}) {
      const Bf16Outputs r = run_both(c, 900 + i, {}, threads);
      ASSERT_LT(first_bf16_mismatch(r), 0) << c.describe() << " threads " << threads << " kernel " << r.kernel;
    }
  }
  EXPECT_GT(channels_first, 10);
}

TEST(Bf16, LanePackedLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(99);
  int tested = 0;
  for (int i = 0; i < 60 && tested < 30; ++i) {
    const auto c = testing::random_lane_packed_case(rng, 16);
    if (!c) continue;
    ++tested;
    const Bf16Outputs r = run_both(channels_last(*c), 500 + i);
    const int64_t bad = first_bf16_mismatch(r);
    ASSERT_LT(bad, 0) << c->describe() << " kernel " << r.kernel;
  }
  EXPECT_GT(tested, 10);
}

TEST(Bf16, SplitChannelGroupsAndThreadsAgree) {
  REQUIRE_BF16();
  testing::expect_per_group_kernels_and_threads_agree(Backend::kXbyak);
}

TEST(Bf16, ReshapeKeepsTheDtypeAndThePacking) {
  REQUIRE_BF16();
  const LayerConfig c = config_of(24, 3, 2);
  const Layer layer = Layer::create_initialized(c, {1, 3, 4, 5, 9}, 1, bf16_options());
  const Layer bigger = layer.reshape({2, 4, 3, 7, 9});
  EXPECT_EQ(bigger.dtype(), DataType::kBfloat16);
  EXPECT_EQ(bigger.weight_packs(), 1);
  const Layer reference = Layer::create(c, {2, 4, 3, 7, 9}, ConstTensor{layer.kernel().data(), {3, 3, 3, 24, 9}},
                                        ConstTensor{layer.bias().data(), {24}}, bf16_options(Backend::kReference));
  std::mt19937_64 rng(8);
  const std::vector<uint16_t> x = random_bf16(2 * 4 * 3 * 7 * 9, rng);
  Bf16Outputs r;
  r.expected.resize(size_t(reference.output_elements()));
  r.actual.resize(size_t(bigger.output_elements()));
  reference.forward_bf16(x.data(), r.expected.data());
  bigger.forward_bf16(x.data(), r.actual.data());
  EXPECT_LT(first_bf16_mismatch(r), 0);
}

TEST(Bf16, OddCinNeverReadsPastAVoxelsChannels) {
  REQUIRE_BF16();
  testing::expect_odd_cin_never_reads_past_a_voxel(Backend::kXbyak);
}

TEST(Bf16, NanAndInfPropagateLikeTheReference) {
  REQUIRE_BF16();
  std::vector<std::string> no_nan;
  testing::expect_nan_and_inf_propagate(Backend::kXbyak, 5, &no_nan);
  for (const std::string& c : no_nan) ADD_FAILURE() << "no NaN reached the output: " << c;
}

TEST(Bf16, ACpuWithoutAvx512Bf16GetsAClearError) {
  const LayerConfig c = config_of(8, 2, 2);
  ScopedCpuFeatureMask hide(CpuFeature::kAvx512Bf16);
  EXPECT_FALSE(cpu_features().avx512_bf16);
  try {
    (void)Layer::create_initialized(c, {1, 2, 2, 2, 4}, 1, bf16_options(Backend::kAuto));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 needs avx512_bf16"), std::string::npos) << e.what();
  }
  // The reference still runs bf16, and float32 is untouched.
  EXPECT_NO_THROW((void)Layer::create_initialized(c, {1, 2, 2, 2, 4}, 1, bf16_options(Backend::kReference)));
  EXPECT_NO_THROW((void)Layer::create_initialized(c, {1, 2, 2, 2, 4}, 1));
}

TEST(Bf16, HidingAvx512HidesAvx512Bf16) {
  ScopedCpuFeatureMask hide(CpuFeature::kAvx512);
  EXPECT_FALSE(cpu_features().avx512_bf16);
}

TEST(Bf16, WhatBf16DoesNotRunIsAnError) {
  const LayerConfig c = config_of(8, 2, 2);
  const std::vector<int64_t> shape = {1, 2, 2, 2, 4};
  auto message = [&](const LayerConfig& config, const std::vector<int64_t>& s, const LayerOptions& o) {
    try {
      (void)Layer::create_initialized(config, s, 1, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(c, shape, bf16_options(Backend::kGeneric)).find("generic backend"), std::string::npos);
  LayerConfig softmax = c;
  softmax.activation = parse_activation_name("softmax", Flavor::kKeras3);
  EXPECT_NE(message(softmax, shape, bf16_options(Backend::kReference)).find("elementwise"), std::string::npos);
  if (have_bf16()) {
    LayerOptions avx2 = bf16_options();
    avx2.isa = Isa::kAvx2;
    EXPECT_NE(message(c, shape, avx2).find("AVX-512"), std::string::npos);
  }
}

TEST(Bf16, Float32AndBf16CallsDoNotMix) {
  const LayerConfig c = config_of(8, 2, 2);
  const Layer f32 = Layer::create_initialized(c, {1, 2, 2, 2, 4}, 1);
  const Layer bf16 = Layer::create_initialized(c, {1, 2, 2, 2, 4}, 1, bf16_options(Backend::kReference));
  std::vector<float> fin(static_cast<size_t>(2 * 2 * 2 * 4)), fout(static_cast<size_t>(f32.output_elements()));
  std::vector<uint16_t> bin(fin.size()), bout(fout.size());
  EXPECT_THROW(f32.forward_bf16(bin.data(), bout.data()), Error);
  EXPECT_THROW(bf16.forward(fin.data(), fout.data()), Error);
  std::vector<float> dx(fin.size());
  EXPECT_THROW(bf16.backward(fin.data(), fout.data(), fout.data(), dx.data(), nullptr, nullptr), Error);
  EXPECT_EQ(bf16.dtype(), DataType::kBfloat16);
  EXPECT_EQ(f32.dtype(), DataType::kFloat32);
}

TEST(Bf16, Float32PlansKeysAndNamesCarryNoDtype) {
  const ConvGeometry g = resolve_geometry(config_of(24, 3, 2), {1, 4, 4, 6, 7});
  Problem p = make_problem(g, true, Activation{});
  // The same plan choices for both (here: no lane packing over several
  // vectors, no ymm vectors): the same blocking.
  codegen::PlanOptions float32_only_off;
  float32_only_off.pack_w_multi_vector = false;
  float32_only_off.narrow_avx512 = false;
  const codegen::KernelPlan f32 = codegen::make_plan(p, Isa::kAvx512, float32_only_off);
  EXPECT_EQ(f32.cache_key().find("bf16"), std::string::npos);
  EXPECT_EQ(f32.weight_layout_key().find("bf16"), std::string::npos);
  EXPECT_EQ(codegen::kernel_name(f32).rfind("tconv3d_f32_", 0), 0u);
  p.dtype = DataType::kBfloat16;
  const codegen::KernelPlan bf = codegen::make_plan(p, Isa::kAvx512, float32_only_off);
  EXPECT_EQ(bf.cache_key(), f32.cache_key() + "/bf16");
  EXPECT_EQ(bf.weight_layout_key(), f32.weight_layout_key() + "/bf16");
  EXPECT_EQ(codegen::kernel_name(bf).rfind("tconv3d_bf16_", 0), 0u);
  // Pairs: 7 channels are 4 pairs, half the dwords of 8 float32 channels.
  EXPECT_EQ(bf.contraction_steps(), 4);
  EXPECT_THROW(codegen::make_plan(p, Isa::kAvx2), Error);
}

TEST(Bf16, PackedWeightsArePairsRoundedToNearestEven) {
  // 1x1x1 kernel, 3 input channels, 2 filters: pair k of filter f is
  // (w[f][2k], w[f][2k+1]) in one dword, the missing 4th channel zero.
  const ConvGeometry g = resolve_geometry(config_of(2, 1, 1), {1, 1, 1, 1, 3});
  Problem p = make_problem(g, false, Activation{});
  p.dtype = DataType::kBfloat16;
  codegen::PlanOptions zmm;  // 16 lanes (2 filters alone would take ymm vectors)
  zmm.narrow_avx512 = false;
  const codegen::KernelPlan plan = codegen::make_plan(p, Isa::kAvx512, zmm);
  // 1 + 2^-8 is a tie: rounds to even (1.0); 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
  const float kernel[6] = {1.0f + 0x1p-8f, 2.0f, -3.0f, 1.0f + 3 * 0x1p-8f, 5.0f, 6.0f};
  const AlignedFloats packed = pack_weights(plan, kernel);
  ASSERT_EQ(packed.size(), 2u * 16u);
  const uint16_t* h = reinterpret_cast<const uint16_t*>(packed.data());
  // [pair][lane][half]
  EXPECT_EQ(bf16_to_float(h[0]), 1.0f);
  EXPECT_EQ(bf16_to_float(h[1]), 2.0f);
  EXPECT_EQ(bf16_to_float(h[2]), 1.0f + 0x1p-6f);
  EXPECT_EQ(bf16_to_float(h[3]), 5.0f);
  EXPECT_EQ(bf16_to_float(h[32]), -3.0f);
  EXPECT_EQ(h[33], 0);
  EXPECT_EQ(bf16_to_float(h[34]), 6.0f);
  EXPECT_EQ(h[35], 0);
  for (int lane = 2; lane < 16; ++lane) EXPECT_EQ(h[2 * lane], 0);
}

TEST(Bf16, SixteenBitTransposeCoversTilesAndEdges) {
  for (int64_t rows : {1, 7, 8, 9, 16, 23})
    for (int64_t cols : {1, 8, 13, 24}) {
      const int64_t ss = cols + 3, ds = rows + 5;  // strides wider than the block
      std::vector<uint16_t> src(size_t(rows * ss)), dst(size_t(cols * ds), 0xFFFF);
      for (size_t i = 0; i < src.size(); ++i) src[i] = uint16_t(i * 7 + 1);
      transpose_block_u16(src.data(), ss, dst.data(), ds, rows, cols);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          ASSERT_EQ(dst[size_t(j * ds + i)], src[size_t(i * ss + j)]) << rows << "x" << cols << " at " << i << "," << j;
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t i = rows; i < ds; ++i) ASSERT_EQ(dst[size_t(j * ds + i)], 0xFFFF) << "wrote past the block";
    }
}

TEST(Bf16, RoundingHelpers) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3F80);  // tie to even
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3F82);  // tie to even, up
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(INFINITY)), INFINITY);
  EXPECT_EQ(bf16_to_float(float_to_bf16(std::numeric_limits<float>::max())), INFINITY);
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Bf16Peak, VdpBf16PsCeilingIsMeasuredOrRefused) {
  FmaPeakOptions o;
  o.runs = 1;
  o.seconds_per_run = 0.005;
  if (have_bf16()) EXPECT_GT(measure_bf16_peak(o), 0.0);
  ScopedCpuFeatureMask hide(CpuFeature::kAvx512Bf16);
  EXPECT_THROW(measure_bf16_peak(o), Error);
}

TEST(Bf16Npy, RawBitsAcceptU2AndV2AndRefuseFloat32) {
  const auto dir = testing::fresh_temp_dir("bf16_npy");
  const std::vector<uint16_t> bits = {0x3F80, 0xC000, 0x7FC0, 0x0001};
  write_npy_bf16((dir / "a.npy").string(), {2, 2}, bits.data());
  const std::string u2 = read_bytes(dir / "a.npy");
  ASSERT_NE(u2.find("'<u2'"), std::string::npos);
  EXPECT_EQ(parse_npy_bf16(u2, "a").data, bits);
  for (const char* descr : {"'|V2'", "'<V2'"}) {
    std::string v2 = u2;
    v2.replace(v2.find("'<u2'"), 5, descr);
    const NpyBf16Array a = parse_npy_bf16(v2, "v2");
    EXPECT_EQ(a.data, bits) << descr;
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
    EXPECT_THROW(parse_npy(v2, "v2"), Error) << "a bf16 file read as float32";
  }
  const float f[2] = {1.0f, 2.0f};
  write_npy((dir / "f.npy").string(), {2}, f);
  EXPECT_THROW(read_npy_bf16((dir / "f.npy").string()), Error) << "a float32 file read as bf16";
  EXPECT_THROW(parse_npy(u2, "u2"), Error);
}

TEST(Bf16Cli, RunMatchesTheReferenceAndRefusesWhatItCannotRun) {
  const auto dir = testing::fresh_temp_dir("bf16_cli");
  write_text(dir / "layer.json",
             R"({"filters": 5, "kernel_size": [3, 3, 3], "strides": [2, 2, 2], "padding": "same",)"
             R"( "activation": "relu", "use_bias": true})");
  std::mt19937_64 rng(3);
  const std::vector<uint16_t> x = random_bf16(2 * 3 * 4 * 5 * 7, rng);
  const std::vector<float> k = testing::random_tensor(3 * 3 * 3 * 5 * 7, rng), b = testing::random_tensor(5, rng);
  write_npy_bf16((dir / "x.npy").string(), {2, 3, 4, 5, 7}, x.data());
  write_npy((dir / "xf.npy").string(), {2, 3, 4, 5, 7}, k.data());  // float32 data, any values
  write_npy((dir / "k.npy").string(), {3, 3, 3, 5, 7}, k.data());
  write_npy((dir / "b.npy").string(), {5}, b.data());
  auto run = [&](const std::string& input, const std::string& out, std::vector<std::string> extra,
                 const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"run", "--layer", (dir / "layer.json").string(), "--input", (dir / input).string(),
                                     "--kernel", (dir / "k.npy").string(), "--bias", (dir / "b.npy").string(),
                                     "--output", (dir / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_cli(args, dir.string(), env);
  };
  const auto ref = run("x.npy", "ref.npy", {"--dtype", "bf16", "--backend", "reference"});
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const NpyBf16Array expected = read_npy_bf16((dir / "ref.npy").string());
  EXPECT_EQ(expected.shape, (std::vector<int64_t>{2, 6, 8, 10, 5}));
  if (have_bf16()) {
    const auto jit = run("x.npy", "y.npy", {"--dtype", "bf16"});
    ASSERT_EQ(jit.exit_code, 0) << jit.err;
    Bf16Outputs r;
    r.expected = expected.data;
    r.actual = read_npy_bf16((dir / "y.npy").string()).data;
    EXPECT_LT(first_bf16_mismatch(r), 0);
  }
  const auto masked = run("x.npy", "m.npy", {"--dtype", "bf16"}, {"TCONV3D_CPU_MASK=avx512_bf16"});
  EXPECT_EQ(masked.exit_code, 2);
  EXPECT_NE(masked.err.find("bf16 needs avx512_bf16"), std::string::npos) << masked.err;
  const auto f32_as_bf16 = run("xf.npy", "e1.npy", {"--dtype", "bf16", "--backend", "reference"});
  EXPECT_EQ(f32_as_bf16.exit_code, 2);
  EXPECT_NE(f32_as_bf16.err.find("is not bf16 raw bits"), std::string::npos) << f32_as_bf16.err;
  const auto bf16_as_f32 = run("x.npy", "e2.npy", {});
  EXPECT_EQ(bf16_as_f32.exit_code, 2);
  EXPECT_NE(bf16_as_f32.err.find("--dtype bf16"), std::string::npos) << bf16_as_f32.err;
  const auto bad = run("x.npy", "e3.npy", {"--dtype", "fp8"});
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
}  // namespace tconv3d
