// Reading plain values out of Keras JSON, with Keras's own errors: an int
// where Keras wants an int, a triple where it takes an int or 3 ints.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tconv3d/config.hpp"

namespace tconv3d::json_values {

std::string lower(std::string s);
int64_t integer_value(const nlohmann::json& v, const std::string& argument);
double number_value(const nlohmann::json& v, const std::string& argument);
// An int or an iterable of exactly 3 integers, as Keras's standardize_tuple.
Triple triple_value(const nlohmann::json& v, const std::string& argument);
std::string string_value(const nlohmann::json& v, const std::string& argument);

}  // namespace tconv3d::json_values
