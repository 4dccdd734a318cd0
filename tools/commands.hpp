// The tconv3d CLI's subcommands. Each returns the process exit code; bad input
// is thrown as tconv3d::Error and reported by main() with exit code 2.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/layer.hpp"
#include "tools/args.hpp"

namespace tconv3d::cli {

int run_command(const std::vector<std::string>& argv);
int shape_command(const std::vector<std::string>& argv);
int constrain_command(const std::vector<std::string>& argv);
int bench_command(const std::vector<std::string>& argv);

// Shared by the commands.
std::string read_text_file(const std::string& path);
LayerConfig load_layer_config(const std::string& path, std::optional<Flavor> flavor,
                              std::vector<std::string>* warnings);
std::optional<Flavor> flavor_option(const Args& args);
LayerOptions layer_options(const Args& args);
void print_warnings(const std::vector<std::string>& warnings);

}  // namespace tconv3d::cli
