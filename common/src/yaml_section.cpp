#include "udc/common/yaml_section.hpp"

#include <cmath>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

namespace udc::common {

YAML::Node load_yaml_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw ConfigError(path + ": no such configuration file");
  // A folder opens as a stream on Linux, and yaml-cpp leaks its buffer when reading it fails.
  if (!std::filesystem::is_regular_file(path)) {
    throw ConfigError(path + ": not a configuration file (a folder or a device)");
  }
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ": malformed YAML: " + e.what());
  }
}

std::string parse_integer_param(const std::string& text, int64_t min, int64_t max, int64_t& value) {
  std::istringstream in(text);
  int64_t number = 0;
  if (!(in >> number) || !(in >> std::ws).eof() || number < min || number > max) {
    return "expected an integer " + std::to_string(min) + ".." + std::to_string(max) + ", got '" +
           text + "'";
  }
  value = number;
  return {};
}

std::string parse_real_param(const std::string& text, double min, double max, double& value) {
  std::istringstream in(text);
  double number = 0;
  if (!(in >> number) || !(in >> std::ws).eof() || !std::isfinite(number) || number < min ||
      number > max) {
    return "expected a number " + fmt::format("{}..{}", min, max) + ", got '" + text + "'";
  }
  value = number;
  return {};
}

std::string parse_choice_param(const std::string& text, const std::vector<std::string>& choices,
                               size_t& index) {
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i] == text) {
      index = i;
      return {};
    }
    list += (i ? ", " : "") + choices[i];
  }
  return "'" + text + "' is not one of: " + list;
}

YamlSection::YamlSection(std::string file, YAML::Node node, std::string path)
    : file_(std::move(file)), node_(std::move(node)), path_(std::move(path)) {
  if (node_ && !node_.IsNull() && !node_.IsMap()) {
    fail_at(node_, "", "expected a map of keys");
  }
}

// The dotted path of `key` in messages: "train.warmup.epochs".
std::string YamlSection::key_path(const std::string& key) const {
  if (path_.empty()) return key;
  if (key.empty()) return path_;
  return path_ + "." + key;
}

void YamlSection::fail_at(const YAML::Node& node, const std::string& key,
                          const std::string& what) const {
  std::string where = file_;
  if (node && !node.Mark().is_null()) where += ":" + std::to_string(node.Mark().line + 1);
  const std::string name = key_path(key);
  throw ConfigError(where + ": " + (name.empty() ? "" : name + ": ") + what);
}

void YamlSection::fail(const std::string& key, const std::string& what) const {
  fail_at(node_ && node_.IsMap() && node_[key] ? node_[key] : node_, key, what);
}

bool YamlSection::has(const std::string& key) const {
  return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull();
}

// Marks `key` read and returns its scalar node; absent or null: nullopt (the caller
// falls back to its default); a map or list where a scalar belongs fails here.
std::optional<YAML::Node> YamlSection::scalar(const std::string& key) {
  read_.insert(key);
  if (!has(key)) return std::nullopt;
  YAML::Node value = node_[key];
  if (!value.IsScalar()) fail_at(value, key, "expected a single value");
  return value;
}

std::string YamlSection::string(const std::string& key, const std::string& fallback) {
  const std::optional<YAML::Node> value = scalar(key);
  return value ? value->Scalar() : fallback;
}

std::string YamlSection::required_string(const std::string& key) {
  const std::optional<YAML::Node> value = scalar(key);
  if (!value) fail_at(node_, key, "missing (required)");
  return value->Scalar();
}

std::string YamlSection::choice(const std::string& key, const std::string& fallback,
                                const std::vector<std::string>& choices) {
  const std::string value = string(key, fallback);
  size_t index = 0;
  if (std::string error = parse_choice_param(value, choices, index); !error.empty()) {
    fail(key, error);
  }
  return value;
}

int64_t YamlSection::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  const std::optional<YAML::Node> value = scalar(key);
  if (!value) return fallback;
  int64_t number = 0;
  if (std::string error = parse_integer_param(value->Scalar(), min, max, number); !error.empty()) {
    fail_at(*value, key, error);
  }
  return number;
}

double YamlSection::number(const std::string& key, double fallback, double min, double max) {
  const std::optional<YAML::Node> value = scalar(key);
  if (!value) return fallback;
  double number = 0;
  if (std::string error = parse_real_param(value->Scalar(), min, max, number); !error.empty()) {
    fail_at(*value, key, error);
  }
  return number;
}

bool YamlSection::boolean(const std::string& key, bool fallback) {
  const std::optional<YAML::Node> value = scalar(key);
  if (!value) return fallback;
  const std::string& text = value->Scalar();
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  fail_at(*value, key, "expected true or false, got '" + text + "'");
}

std::vector<int64_t> YamlSection::integers(const std::string& key,
                                           const std::vector<int64_t>& fallback, int64_t min,
                                           int64_t max) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (value.IsScalar()) return {integer(key, 0, min, max)};
  if (!value.IsSequence() || value.size() == 0) fail_at(value, key, "expected a list of integers");
  std::vector<int64_t> numbers;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element = key + "[" + std::to_string(i) + "]";
    if (!value[i].IsScalar()) fail_at(value[i], element, "expected a single value");
    int64_t number = 0;
    if (std::string error = parse_integer_param(value[i].Scalar(), min, max, number);
        !error.empty()) {
      fail_at(value[i], element, error);
    }
    numbers.push_back(number);
  }
  return numbers;
}

std::vector<double> YamlSection::numbers(const std::string& key,
                                         const std::vector<double>& fallback, double min,
                                         double max) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (value.IsScalar()) return {number(key, 0.0, min, max)};
  if (!value.IsSequence() || value.size() == 0) fail_at(value, key, "expected a list of numbers");
  std::vector<double> numbers;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element = key + "[" + std::to_string(i) + "]";
    if (!value[i].IsScalar()) fail_at(value[i], element, "expected a single value");
    double number = 0;
    if (std::string error = parse_real_param(value[i].Scalar(), min, max, number); !error.empty()) {
      fail_at(value[i], element, error);
    }
    numbers.push_back(number);
  }
  return numbers;
}

std::vector<std::string> YamlSection::strings(const std::string& key,
                                              const std::vector<std::string>& fallback) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (value.IsScalar()) return {value.Scalar()};
  if (!value.IsSequence() || value.size() == 0) fail_at(value, key, "expected a list of strings");
  std::vector<std::string> list;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].IsScalar())
      fail_at(value[i], key + "[" + std::to_string(i) + "]", "expected a string");
    list.push_back(value[i].Scalar());
  }
  return list;
}

std::vector<std::string> YamlSection::keys() const {
  std::vector<std::string> list;
  if (!node_ || !node_.IsMap()) return list;
  for (const auto& entry : node_) list.push_back(entry.first.Scalar());
  return list;
}

bool YamlSection::holds_map(const std::string& key) const {
  return has(key) && node_[key].IsMap();
}

YamlSection YamlSection::section(const std::string& key) {
  read_.insert(key);
  if (!has(key)) return YamlSection(file_, YAML::Node(), key_path(key));
  return YamlSection(file_, node_[key], key_path(key));
}

std::vector<YamlSection> YamlSection::sections(const std::string& key) {
  read_.insert(key);
  std::vector<YamlSection> list;
  if (!has(key)) return list;
  const YAML::Node value = node_[key];
  if (!value.IsSequence()) fail_at(value, key, "expected a list of maps");
  for (size_t i = 0; i < value.size(); ++i) {
    list.emplace_back(file_, value[i], key_path(key) + "[" + std::to_string(i) + "]");
  }
  return list;
}

void YamlSection::finish() const {
  if (!node_ || !node_.IsMap()) return;
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    if (read_.count(key) == 0) {
      std::string known;
      for (const std::string& k : read_) known += (known.empty() ? "" : ", ") + k;
      fail_at(entry.first, key, "unknown key (expected one of: " + known + ")");
    }
  }
}

}  // namespace udc::common
