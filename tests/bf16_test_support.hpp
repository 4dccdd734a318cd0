// What the bf16 forward tests share (bf16_test: Xbyak, llvm_bf16_test: LLVM):
// one layer pair on the same weights and bf16 input, and the bf16 tolerance
// both hold a kernel to.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d::testing {

// channels_last version of a random case (the bf16 kernels run channels_last
// natively; channels_first cases are tested as they come).
RandomCase channels_last(RandomCase c);

std::vector<uint16_t> to_bf16(const std::vector<float>& values);
// random_tensor(count, rng) rounded to bf16.
std::vector<uint16_t> random_bf16(int64_t count, std::mt19937_64& rng);

LayerOptions bf16_options(Backend backend = Backend::kXbyak, int threads = 1);

struct Bf16Outputs {
  std::vector<uint16_t> expected, actual;
  std::string kernel;  // the tested layer's kernel name
};

// May change the bf16 input bits and the float32 kernel before both layers see them.
using Bf16Edit = std::function<void(std::vector<uint16_t>& input, std::vector<float>& kernel, const ConvGeometry&)>;

// The layer on `tested` (with `threads`) and the one on `expected` (1
// thread) over the same random weights and bf16 input drawn from `seed`
// (kernel, bias, input, in that order). `actual` starts as a NaN pattern, so
// an element the kernel never writes shows.
Bf16Outputs run_bf16_pair(const RandomCase& c, uint64_t seed, Backend tested, Backend expected, int threads = 1,
                          const Bf16Edit& edit = {});

// Both bf16 results differ by their own rounding (1 bf16 ulp relative: the
// exact value may sit near a rounding boundary and float32 accumulation in
// another order may land on the other side) plus the float32 accumulation's
// error, small against the output scale; NaN must meet NaN and Inf the same
// Inf. Returns the first element outside that, or -1; `worst`, if given, gets
// the largest |difference| / tolerance over the finite elements.
int64_t first_bf16_mismatch(const Bf16Outputs& r, double* worst = nullptr);
// The same over two bf16 vectors; 0 when their sizes differ.
int64_t first_bf16_mismatch(const std::vector<uint16_t>& expected, const std::vector<uint16_t>& actual,
                            double* worst = nullptr);

// detected_cpu_features().avx512_bf16: what the JIT bf16 kernels need.
bool have_bf16();

// Test bodies both JIT backends' bf16 tests run (gtest failures inside), the
// layer on `tested` against the bf16 reference:
// 100 random channels_last layers drawn from `seed` (case i's data from seed
// 100 + i, on 1 + i % max_threads threads): every element within the bf16
// tolerance, kernels named tconv3d_bf16_... ending in `kernel_suffix`, and the
// draw reaching odd Cin, batches > 1 and activations (more than 10 each).
// *worst: the largest |difference| / tolerance over all cases.
void expect_random_layers_match(Backend tested, uint64_t seed, int max_threads, const std::string& kernel_suffix,
                                double* worst);
// 256 -> 192 filters, 3x3x3: > 1 MB of packed weights per row, so the channel
// groups run as separate kernels ("_per_group"); 1 and 2 threads give the same bits.
void expect_per_group_kernels_and_threads_agree(Backend tested);
// Channel 0 of every voxel +Inf and every weight positive: each output +Inf.
// A kernel pairing the last odd channel (Cin 1, 3, 5, 17) with the next
// voxel's channel 0 (or whatever follows the buffer) would add 0 * Inf = NaN.
void expect_odd_cin_never_reads_past_a_voxel(Backend tested);
// Ten random linear layers (channels_last, drawn from `seed`) with +Inf,
// -Inf and NaN inputs: the same outputs as the reference. The cases whose
// reference output has no NaN (the draw did not test NaN propagation) are
// described in *no_nan_reached.
void expect_nan_and_inf_propagate(Backend tested, uint64_t seed, std::vector<std::string>* no_nan_reached);

}  // namespace tconv3d::testing
