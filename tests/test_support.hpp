// Shared helpers for the tests: random tensors, random layer configs, and
// comparison against the reference kernel.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d::testing {

std::vector<float> random_tensor(int64_t count, std::mt19937_64& rng, float low = -1.0f, float high = 1.0f);

// max |a - b| / max(1, max |b|): the "error relative to the output scale".
double scaled_max_error(const std::vector<float>& actual, const std::vector<float>& expected);

// A float and its IEEE-754 bit pattern, either way.
float from_bits(uint32_t bits);
uint32_t bits_of(float f);

// filters, a cubic kernel k and strides s.
LayerConfig config_of(int64_t filters, int64_t k, int64_t s, Padding padding = Padding::kSame);

// Random float32 weights and input (uniform in [-1, 1]) for a layer of
// geometry `g`, drawn from `rng` in the order kernel, bias, input.
struct RandomLayerData {
  std::vector<int64_t> kernel_shape;  // {kd, kh, kw, filters, in_channels}
  std::vector<float> kernel, bias, input;
};
RandomLayerData random_layer_data(const ConvGeometry& g, std::mt19937_64& rng);

struct RandomCase {
  LayerConfig config;
  std::vector<int64_t> input_shape;
  std::string describe() const;
};

// A random valid layer: both paddings and data formats, strides 1-3 (stride >
// kernel included), dilation (with stride 1), output_padding, channel counts
// that are not multiples of 8 or 16, batch > 1, 1-sized dims. Sizes are kept
// small so hundreds of cases run in seconds.
RandomCase random_case(std::mt19937_64& rng, bool elementwise_activation_only = true);

// A random layer in the lane-packing regime for `lanes`-wide vectors: W
// stride 2-4, filters * stride <= lanes, W input 1-12 (partial super voxels
// at both row ends), no dilation. None when the draw has no valid output.
std::optional<RandomCase> random_lane_packed_case(std::mt19937_64& rng, int64_t lanes);

struct CliResult {
  int exit_code = -1;  // 1000 + signal number when the CLI crashed
  std::string out, err;
};

// Runs the tconv3d CLI (TCONV3D_CLI_PATH) with `args`, stdin from /dev/null and
// stdout/stderr captured to files in a fresh folder inside `capture_dir`
// (no shell involved). `env` entries ("NAME=value") are added to, or replace,
// this process's environment in the child only.
CliResult run_cli(const std::vector<std::string>& args, const std::string& capture_dir,
                  const std::vector<std::string>& env = {});

// Runs `command` through /bin/sh with stderr merged into stdout; returns the
// exit status (-1 when it did not exit normally) and, if asked, the output.
int run_shell(const std::string& command, std::string* output = nullptr);
bool have_c_compiler();  // `cc` on PATH

// An empty folder in the temp directory, named by `tag` and this process,
// replacing any earlier one of the same name.
std::filesystem::path fresh_temp_dir(const std::string& tag);

// Sets (or, with nullopt, unsets) an environment variable while it lives.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Runs `options` and the reference on the same random weights and input, and
// returns the scaled max error.
double compare_with_reference(const RandomCase& c, const LayerOptions& options, uint64_t seed);

}  // namespace tconv3d::testing
