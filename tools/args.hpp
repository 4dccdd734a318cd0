// A small --flag value parser for the tconv3d CLI: every flag is declared, so
// a misspelt one is an error rather than silently ignored.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tconv3d::cli {

class Args {
 public:
  // value_flags take a value; switch_flags do not.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
       const std::set<std::string>& switch_flags);

  std::optional<std::string> get(const std::string& flag) const;
  std::string require(const std::string& flag) const;
  bool has(const std::string& flag) const;
  int get_int(const std::string& flag, int fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // For commands that take only flags: a stray word is an error, not ignored.
  void reject_positional() const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

std::vector<int64_t> parse_shape(const std::string& text, const std::string& flag);

}  // namespace tconv3d::cli
