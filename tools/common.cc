#include <cstdio>
#include <fstream>
#include <sstream>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

namespace tconv3d::cli {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open for reading");
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

std::optional<Flavor> flavor_option(const Args& args) {
  if (auto text = args.get("--keras-flavor")) return parse_flavor(*text);
  return std::nullopt;
}

LayerOptions layer_options(const Args& args) {
  LayerOptions options;
  if (auto text = args.get("--backend")) options.backend = parse_backend(*text);
  if (auto text = args.get("--isa")) options.isa = parse_isa(*text);
  options.threads = args.get_int("--threads", 0);
  return options;
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::fprintf(stderr, "tconv3d: warning: %s\n", w.c_str());
}

}  // namespace tconv3d::cli
