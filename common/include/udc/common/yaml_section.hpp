// Strict reading of YAML configuration files: every key is read once with its default, a
// key nobody read is an error, and every error names the file, the line and the dotted key
// path ("configs/train/x.yaml:12: model.layers[2].bits: expected an integer 2..8, got 9").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace udc::common {

/// Malformed or invalid configuration; what() is "FILE[:LINE]: KEY: problem".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The checks of a configuration value, shared by YAML files, --set and sweep axes: parse
/// `text` into `value`; "" on success, else what was expected ("expected an integer 1..4,
/// got '9'"), `value` unchanged.
std::string parse_integer_param(const std::string& text, int64_t min, int64_t max, int64_t& value);
std::string parse_real_param(const std::string& text, double min, double max, double& value);
/// The index of `text` in `choices`; an error listing them when absent.
std::string parse_choice_param(const std::string& text, const std::vector<std::string>& choices,
                               size_t& index);

/// Parses a YAML file; throws ConfigError for a missing file or malformed YAML.
YAML::Node load_yaml_file(const std::string& path);

/// A map in a YAML file, read key by key. Call finish() after the last read to reject keys
/// that were not read.
class YamlSection {
 public:
  /// `path` is the dotted key path of `node` ("" for the root).
  YamlSection(std::string file, YAML::Node node, std::string path);

  bool has(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback);
  std::string required_string(const std::string& key);
  /// One of `choices`.
  std::string choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices);
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  double number(const std::string& key, double fallback, double min, double max);
  bool boolean(const std::string& key, bool fallback);
  /// A list of integers (a scalar is a list of one).
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback,
                                int64_t min, int64_t max);
  /// A list of numbers in [min, max] (a scalar is a list of one).
  std::vector<double> numbers(const std::string& key, const std::vector<double>& fallback,
                              double min, double max);
  /// A list of strings (a scalar is a list of one).
  std::vector<std::string> strings(const std::string& key,
                                   const std::vector<std::string>& fallback);
  /// The keys of this map in file order (marks none read).
  std::vector<std::string> keys() const;
  /// True when `key` holds a map (false when absent, null, a scalar or a list).
  bool holds_map(const std::string& key) const;
  /// A sub-map (empty section if absent).
  YamlSection section(const std::string& key);
  /// A list of maps; each becomes a section "key[i]".
  std::vector<YamlSection> sections(const std::string& key);

  /// Throws ConfigError naming the first key that was never read.
  void finish() const;
  /// "FILE:LINE: PATH.KEY: what" as a ConfigError.
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  std::optional<YAML::Node> scalar(const std::string& key);
  std::string key_path(const std::string& key) const;
  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& key,
                            const std::string& what) const;

  std::string file_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> read_;
};

}  // namespace udc::common
