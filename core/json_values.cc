#include "core/json_values.hpp"

#include <algorithm>
#include <cctype>

#include "tconv3d/error.hpp"

namespace tconv3d::json_values {

using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int64_t integer_value(const json& v, const std::string& argument) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  throw Error(argument, "expected an integer, got " + v.dump());
}

double number_value(const json& v, const std::string& argument) {
  if (v.is_number()) return v.get<double>();
  throw Error(argument, "expected a number, got " + v.dump());
}

// An int or an iterable of exactly 3 integers, as Keras's standardize_tuple.
Triple triple_value(const json& v, const std::string& argument) {
  if (v.is_number()) {
    const int64_t x = integer_value(v, argument);
    return {x, x, x};
  }
  if (v.is_array() && v.size() == 3) {
    return {integer_value(v[0], argument), integer_value(v[1], argument), integer_value(v[2], argument)};
  }
  throw Error(argument, "The `" + argument + "` argument must be a tuple of 3 integers. Received " +
                            argument + "=" + v.dump());
}

std::string string_value(const json& v, const std::string& argument) {
  if (v.is_string()) return v.get<std::string>();
  throw Error(argument, "expected a string, got " + v.dump());
}

}  // namespace tconv3d::json_values
