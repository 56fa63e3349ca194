#include "udc/common/params.hpp"

#include <fmt/format.h>

namespace udc::common {

std::string param_number_text(double value) {
  return fmt::format("{}", value);
}
std::string param_integer_text(int64_t value) {
  return fmt::format("{}", value);
}

namespace detail {
std::vector<std::string> groups(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const std::string& key : keys) {
    const std::string group = key.substr(0, key.find('.'));
    bool seen = false;
    for (const std::string& g : out) seen = seen || g == group;
    if (!seen) out.push_back(group);
  }
  return out;
}
}  // namespace detail

std::string format_param_line(const std::string& key, const std::string& value,
                              const std::string& unit, const std::string& help,
                              const std::string& range) {
  return fmt::format("{:<40} {:>12} {:<12} {}{}\n", key, value, unit, help,
                     range.empty() ? "" : " [" + range + "]");
}

YamlSection override_section(const std::string& assignment, const std::string& origin) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw ConfigError(origin + ": '" + assignment + "': expected KEY=VALUE");
  }
  const std::string key = assignment.substr(0, equals);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(equals + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": " + key + ": malformed value: " + e.what());
  }
  // Build {a: {b: {c: value}}} from the innermost key out.
  YAML::Node node = value;
  size_t end = key.size();
  while (true) {
    const size_t dot = key.rfind('.', end - 1);
    const std::string part = key.substr(dot == std::string::npos ? 0 : dot + 1,
                                        end - (dot == std::string::npos ? 0 : dot + 1));
    YAML::Node parent(YAML::NodeType::Map);
    parent[part] = node;
    node = parent;
    if (dot == std::string::npos) break;
    end = dot;
  }
  return YamlSection(origin, node, "");
}

}  // namespace udc::common
