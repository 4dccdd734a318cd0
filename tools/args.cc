#include "tools/args.hpp"

#include <sstream>

#include "tconv3d/error.hpp"

namespace tconv3d::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
           const std::set<std::string>& switch_flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (switch_flags.count(arg)) {
      if (inline_value) throw Error(arg, "takes no value");
      switches_.insert(arg);
    } else if (value_flags.count(arg)) {
      if (inline_value) {
        values_[arg] = *inline_value;
      } else {
        if (i + 1 >= argv.size()) throw Error(arg, "needs a value");
        values_[arg] = argv[++i];
      }
    } else {
      throw Error(arg, "unknown option");
    }
  }
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::require(const std::string& flag) const {
  auto value = get(flag);
  if (!value) throw Error(flag, "is required");
  return *value;
}

void Args::reject_positional() const {
  if (!positional_.empty()) throw Error(positional_.front(), "unexpected argument (options start with --)");
}

bool Args::has(const std::string& flag) const { return switches_.count(flag) > 0; }

int Args::get_int(const std::string& flag, int fallback) const {
  auto value = get(flag);
  if (!value) return fallback;
  try {
    size_t used = 0;
    const long long parsed = std::stoll(*value, &used);
    if (used != value->size() || parsed < 0 || parsed > 1 << 20) throw std::invalid_argument("range");
    return static_cast<int>(parsed);
  } catch (const std::exception&) {
    throw Error(flag, "expected a non-negative integer, got '" + *value + "'");
  }
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& flag) {
  std::vector<int64_t> shape;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    try {
      size_t used = 0;
      const long long value = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument("trailing");
      shape.push_back(value);
    } catch (const std::exception&) {
      throw Error(flag, "expected comma-separated integers like 1,16,16,16,32, got '" + text + "'");
    }
  }
  if (shape.empty()) throw Error(flag, "empty shape");
  return shape;
}

}  // namespace tconv3d::cli
