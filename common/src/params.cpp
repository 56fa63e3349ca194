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

std::pair<std::string, std::string> split_assignment(const std::string& assignment,
                                                     const std::string& origin) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw ConfigError(origin + ": '" + assignment + "': expected KEY=VALUE");
  }
  return {assignment.substr(0, equals), assignment.substr(equals + 1)};
}

}  // namespace udc::common
