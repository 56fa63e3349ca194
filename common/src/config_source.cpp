#include "udc/common/config_source.hpp"

namespace udc::common {

std::string ConfigSource::describe() const {
  std::string text;
  for (const std::string& file : files) text += (text.empty() ? "" : " + ") + file;
  if (text.empty()) text = "built-in defaults";
  for (size_t i = 0; i < overrides.size(); ++i) text += (i == 0 ? ", set " : ", ") + overrides[i];
  return text;
}

ConfigSource ConfigSource::overridden_by(const ConfigSource& command_line) const {
  ConfigSource merged = command_line.files.empty() ? *this : ConfigSource{command_line.files, {}};
  merged.overrides.insert(merged.overrides.end(), command_line.overrides.begin(),
                          command_line.overrides.end());
  return merged;
}

}  // namespace udc::common
