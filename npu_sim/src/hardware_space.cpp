#include "udc/npu_sim/hardware_space.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "udc/common/params.hpp"

namespace udc::npu_sim {

size_t HardwareSpace::size() const {
  size_t n = 1;
  for (const HardwareChoice& c : choices) n *= c.options.size();
  return n;
}

std::vector<size_t> HardwareSpace::options_of(size_t index) const {
  if (index >= size())
    throw std::out_of_range("HardwareSpace: no candidate " + std::to_string(index));
  std::vector<size_t> options(choices.size());
  for (size_t c = choices.size(); c-- > 0;) {
    options[c] = index % choices[c].options.size();
    index /= choices[c].options.size();
  }
  return options;
}

size_t HardwareSpace::index_of(const std::vector<size_t>& options) const {
  if (options.size() != choices.size()) throw std::invalid_argument("HardwareSpace: option count");
  size_t index = 0;
  for (size_t c = 0; c < choices.size(); ++c) {
    if (options[c] >= choices[c].options.size()) {
      throw std::out_of_range("HardwareSpace: no option " + std::to_string(options[c]) + " of " +
                              choices[c].name);
    }
    index = index * choices[c].options.size() + options[c];
  }
  return index;
}

NpuConfig HardwareSpace::configure(const NpuConfig& base, size_t index) const {
  NpuConfig config = base;
  const std::vector<size_t> options = options_of(index);
  for (size_t c = 0; c < choices.size(); ++c) {
    const HardwareOption& option = choices[c].options[options[c]];
    for (const std::string& path : option.files) apply_npu_file(config, path);
    for (const auto& [key, value] : option.assignments) {
      set_param(config, key, value, file + ": " + choices[c].name);
    }
  }
  return config;
}

std::string HardwareSpace::describe(size_t index) const {
  const std::vector<size_t> options = options_of(index);
  std::string text;
  for (size_t c = 0; c < choices.size(); ++c) {
    text +=
        fmt::format("{}{}={}", c ? " " : "", choices[c].name, choices[c].options[options[c]].label);
  }
  return text;
}

HardwareSpace HardwareSpace::only(size_t index) const {
  const std::vector<size_t> options = options_of(index);
  HardwareSpace one = *this;
  for (size_t c = 0; c < choices.size(); ++c) {
    one.choices[c].options = {choices[c].options[options[c]]};
  }
  return one;
}

namespace {

/// A value of a parameter, checked by the parameter's own checks (on a default
/// configuration: ranges do not depend on the base).
void check_value(common::YamlSection& section, const std::string& key,
                 const common::Param<NpuConfig>& param, const std::string& value) {
  NpuConfig probe;
  if (std::string error = param.set(probe, value); !error.empty()) section.fail(key, error);
}

/// An option written as a map: `file:` (a path or a list of them, relative to the file
/// that holds it), then parameters.
HardwareOption read_option_map(common::YamlSection& option) {
  HardwareOption result;
  const std::filesystem::path dir = std::filesystem::path(option.file()).parent_path();
  std::vector<std::string> label;
  for (const std::string& file : option.strings("file", {})) {
    const std::string path = (dir / file).string();
    try {
      NpuConfig probe;
      apply_npu_file(probe, path);
    } catch (const common::ConfigError& e) {
      option.fail("file", e.what());
    }
    result.files.push_back(path);
    label.push_back(std::filesystem::path(file).stem().string());
  }
  for (const std::string& key : option.keys()) {
    if (key == "file") continue;
    const common::Param<NpuConfig>* param = common::find_param(npu_params(), key);
    if (!param) option.fail(key, "unknown NPU parameter (see `udc sim --list-params`)");
    const std::string value = option.string(key, "");
    check_value(option, key, *param, value);
    result.assignments.emplace_back(key, value);
    label.push_back(key + "=" + value);
  }
  option.finish();
  if (label.empty()) option.fail("file", "an option sets nothing (expected file: or parameters)");
  result.label = fmt::format("{}", fmt::join(label, " "));
  return result;
}

}  // namespace

HardwareSpace read_hardware_space(common::YamlSection& section, size_t max_candidates) {
  HardwareSpace space;
  space.file = section.file();
  for (const std::string& key : section.keys()) {
    HardwareChoice choice;
    choice.name = key;
    if (const common::Param<NpuConfig>* param = common::find_param(npu_params(), key)) {
      for (const std::string& value : section.strings(key, {})) {
        check_value(section, key, *param, value);
        choice.options.push_back({value, {}, {{key, value}}});
      }
    } else if (key.find('.') != std::string::npos) {
      section.fail(key, "unknown NPU parameter (see `udc sim --list-params`)");
    } else {
      for (common::YamlSection& option : section.sections(key)) {
        choice.options.push_back(read_option_map(option));
      }
    }
    if (choice.options.empty()) {
      section.fail(key,
                   "expected a non-empty list: values of an NPU parameter (see `udc sim "
                   "--list-params`), or maps of file: and parameters for a named choice");
    }
    space.choices.push_back(std::move(choice));
    if (space.size() > max_candidates) {
      section.fail(key, fmt::format("{} candidates, more than the {} allowed", space.size(),
                                    max_candidates));
    }
  }
  section.finish();
  return space;
}

}  // namespace udc::npu_sim
