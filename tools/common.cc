#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

namespace tconv3d::cli {

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open for reading (" + std::string(std::strerror(errno)) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

LayerConfig load_layer_config(const std::string& path, std::optional<Flavor> flavor,
                              std::vector<std::string>* warnings) {
  const std::string text = read_text_file(path);
  try {
    return parse_layer_config(text, flavor, warnings);
  } catch (const Error& e) {
    throw Error(path, e.what());
  }
}

namespace {

// Parses a flag's value with the library's parser, naming the flag as the
// user typed it in the error.
template <typename Parse>
auto parse_flag(const std::string& flag, const std::string& value, Parse&& parse) {
  try {
    return parse(value);
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string prefix = e.argument() + ": ";
    throw Error(flag, what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what);
  }
}

}  // namespace

std::optional<Flavor> flavor_option(const Args& args) {
  if (auto text = args.get("--keras-flavor")) return parse_flag("--keras-flavor", *text, parse_flavor);
  return std::nullopt;
}

LayerOptions layer_options(const Args& args) {
  LayerOptions options;
  if (auto text = args.get("--backend")) options.backend = parse_flag("--backend", *text, parse_backend);
  if (auto text = args.get("--isa")) options.isa = parse_flag("--isa", *text, parse_isa);
  options.threads = args.get_int("--threads", 0);
  if (auto text = args.get("--dtype")) options.dtype = parse_flag("--dtype", *text, parse_data_type);
  return options;
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::fprintf(stderr, "tconv3d: warning: %s\n", w.c_str());
}

NpyArray read_npy_for_flag(const std::string& flag, const std::string& path) {
  try {
    return read_npy(path);
  } catch (const Error& e) {
    throw Error(flag, e.what());
  }
}

std::vector<float> random_values(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(count));
  for (auto& v : values) v = dist(rng);
  return values;
}

}  // namespace tconv3d::cli
