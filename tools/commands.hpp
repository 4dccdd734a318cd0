// The tconv3d CLI's subcommands. Each returns the process exit code; bad input
// is thrown as tconv3d::Error and reported by main() with exit code 2.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/layer.hpp"
#include "tools/args.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d::cli {

int run_command(const std::vector<std::string>& argv);
int backward_command(const std::vector<std::string>& argv);  // gradients of a layer
int shape_command(const std::vector<std::string>& argv);
int constrain_command(const std::vector<std::string>& argv);
int bench_command(const std::vector<std::string>& argv);
int model_command(const std::vector<std::string>& argv);  // inspect | run | bench a model file
int plan_command(const std::vector<std::string>& argv);
int demo_command(const std::vector<std::string>& argv);
int peak_command(const std::vector<std::string>& argv);  // measured FMA ceiling
int aot_command(const std::vector<std::string>& argv);   // relocatable object + C header

// Shared by the commands.
std::string read_text_file(const std::string& path);
LayerConfig load_layer_config(const std::string& path, std::optional<Flavor> flavor,
                              std::vector<std::string>* warnings);
std::optional<Flavor> flavor_option(const Args& args);
LayerOptions layer_options(const Args& args);
void print_warnings(const std::vector<std::string>& warnings);
// read_npy(path), with an error naming `flag` (the flag that gave the path).
NpyArray read_npy_for_flag(const std::string& flag, const std::string& path);
// Uniform values in [-1, 1) from a fixed seed: benchmark and demo inputs.
std::vector<float> random_values(int64_t count, uint64_t seed);

}  // namespace tconv3d::cli
