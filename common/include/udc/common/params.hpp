// Parameters declared once. A configuration struct lists its parameters as Param entries
// (dotted key within its section, type, range or choices, unit, help, and where the value
// lives); reading a YAML section with its checks, writing it back, listing the parameters
// and --set overrides all derive from that one list. Models: Ramulator 2's and gem5's
// declared parameters.
#pragma once

#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "udc/common/yaml_section.hpp"

namespace udc::common {

enum class ParamType { Integer, Real, Choice };

/// One parameter of a configuration struct `Spec`.
template <typename Spec>
struct Param {
  std::string key;  ///< dotted within its section ("warmup.epochs" is `epochs` of `warmup:`)
  ParamType type = ParamType::Real;
  double min = 0, max = 0;           ///< inclusive range (Integer, Real)
  std::vector<std::string> choices;  ///< accepted values (Choice)
  std::string unit;                  ///< e.g. "images", "steps", "1/step"; empty: none
  std::string help;
  /// The value as YAML text.
  std::function<std::string(const Spec&)> text;
  /// Reads `leaf` of `section` (its own key, without the dotted prefix), falling back to
  /// the current value, with the section's checks and error messages.
  std::function<void(Spec&, YamlSection&, const std::string& leaf)> read;
};

/// Shortest text that reads back as the same double; an integer as written.
std::string param_number_text(double value);
std::string param_integer_text(int64_t value);
/// One line of a parameter listing (params_listing()).
std::string format_param_line(const std::string& key, const std::string& value,
                              const std::string& unit, const std::string& help,
                              const std::string& range);
/// A one-entry YAML tree ("a.b.c=v" as {a: {b: {c: v}}}) named after `origin`; throws
/// ConfigError when the assignment has no '='.
YamlSection override_section(const std::string& assignment, const std::string& origin);

/// An Integer or Real parameter reached by `access`, a generic lambda such as
/// `[](auto& s) -> auto& { return s.warmup.epochs; }`; its type decides Integer or Real.
template <typename Spec, typename Access>
Param<Spec> number_param(std::string key, Access access, double min, double max, std::string unit,
                         std::string help) {
  using T = std::decay_t<decltype(access(std::declval<Spec&>()))>;
  Param<Spec> p;
  p.key = std::move(key);
  p.type = std::is_integral_v<T> ? ParamType::Integer : ParamType::Real;
  p.min = min;
  p.max = max;
  p.unit = std::move(unit);
  p.help = std::move(help);
  p.text = [access](const Spec& s) {
    if constexpr (std::is_integral_v<T>) {
      return param_integer_text(static_cast<int64_t>(access(s)));
    } else {
      return param_number_text(static_cast<double>(access(s)));
    }
  };
  p.read = [access, min, max](Spec& s, YamlSection& section, const std::string& leaf) {
    if constexpr (std::is_integral_v<T>) {
      access(s) =
          static_cast<T>(section.integer(leaf, static_cast<int64_t>(access(s)),
                                         static_cast<int64_t>(min), static_cast<int64_t>(max)));
    } else {
      access(s) = static_cast<T>(section.number(leaf, static_cast<double>(access(s)), min, max));
    }
  };
  return p;
}

/// A parameter with named values, stored as `Value` (an enum); `names[i]` names value i.
template <typename Spec, typename Access>
Param<Spec> choice_param(std::string key, Access access, std::vector<std::string> names,
                         std::string help) {
  using T = std::decay_t<decltype(access(std::declval<Spec&>()))>;
  Param<Spec> p;
  p.key = std::move(key);
  p.type = ParamType::Choice;
  p.choices = names;
  p.help = std::move(help);
  p.text = [access, names](const Spec& s) { return names.at(static_cast<size_t>(access(s))); };
  p.read = [access, names](Spec& s, YamlSection& section, const std::string& leaf) {
    const std::string chosen =
        section.choice(leaf, names.at(static_cast<size_t>(access(s))), names);
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == chosen) access(s) = static_cast<T>(i);
    }
  };
  return p;
}

namespace detail {
/// The parameters whose key starts with `prefix` + ".", keys stripped of it.
template <typename Spec>
std::vector<Param<Spec>> under(const std::vector<Param<Spec>>& params, const std::string& prefix) {
  std::vector<Param<Spec>> inner;
  for (const Param<Spec>& p : params) {
    if (p.key.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
    Param<Spec> q = p;
    q.key = p.key.substr(prefix.size() + 1);
    inner.push_back(std::move(q));
  }
  return inner;
}
/// First component of each dotted key, in order of first appearance.
std::vector<std::string> groups(const std::vector<std::string>& keys);
}  // namespace detail

/// Reads every parameter from `section` (nested keys from their sub-sections, each
/// finished) into `spec`, whose current values are the defaults. The caller finishes
/// `section` (it may hold keys that are not parameters).
template <typename Spec>
void read_params(YamlSection& section, const std::vector<Param<Spec>>& params, Spec& spec) {
  std::vector<std::string> keys;
  for (const Param<Spec>& p : params) keys.push_back(p.key);
  for (const std::string& group : detail::groups(keys)) {
    bool leaf = false;
    for (const Param<Spec>& p : params) {
      if (p.key == group) {
        p.read(spec, section, p.key);
        leaf = true;
      }
    }
    if (leaf) continue;
    YamlSection sub = section.section(group);
    read_params(sub, detail::under(params, group), spec);
    sub.finish();
  }
}

/// The parameters as the lines of a YAML block at `indent` spaces, nested keys as one
/// flow map per group ("warmup: {epochs: 2, lr: 0.002}"): read_params() reads it back.
template <typename Spec>
std::string params_yaml(const std::vector<Param<Spec>>& params, const Spec& spec, int indent) {
  std::vector<std::string> keys;
  for (const Param<Spec>& p : params) keys.push_back(p.key);
  std::string yaml;
  for (const std::string& group : detail::groups(keys)) {
    yaml += std::string(size_t(indent), ' ') + group + ": ";
    bool leaf = false;
    for (const Param<Spec>& p : params) {
      if (p.key == group) {
        yaml += p.text(spec) + "\n";
        leaf = true;
      }
    }
    if (leaf) continue;
    std::string inner;
    for (const Param<Spec>& p : detail::under(params, group)) {
      inner += (inner.empty() ? "" : ", ") + p.key + ": " + p.text(spec);
    }
    yaml += "{" + inner + "}\n";
  }
  return yaml;
}

/// One line per parameter: `section.key`, current value, unit, help with range or choices.
template <typename Spec>
std::string params_listing(const std::vector<Param<Spec>>& params, const Spec& spec,
                           const std::string& section) {
  std::string lines;
  for (const Param<Spec>& p : params) {
    std::string range;
    if (p.type == ParamType::Choice) {
      for (const std::string& c : p.choices) range += (range.empty() ? "" : ", ") + c;
    } else {
      range = (p.type == ParamType::Integer ? param_integer_text(int64_t(p.min))
                                            : param_number_text(p.min)) +
              " .. " +
              (p.type == ParamType::Integer ? param_integer_text(int64_t(p.max))
                                            : param_number_text(p.max));
    }
    lines += format_param_line(section + "." + p.key, p.text(spec), p.unit, p.help, range);
  }
  return lines;
}

/// Applies KEY=VALUE overrides whose KEY starts with `section` + "." (others are left to
/// the caller and returned), with the same checks as the file; errors name `origin`.
template <typename Spec>
std::vector<std::string> apply_param_overrides(const std::vector<Param<Spec>>& params, Spec& spec,
                                               const std::string& section,
                                               const std::vector<std::string>& assignments,
                                               const std::string& origin) {
  std::vector<std::string> others;
  for (const std::string& a : assignments) {
    if (a.compare(0, section.size() + 1, section + ".") != 0) {
      others.push_back(a);
      continue;
    }
    YamlSection root = override_section(a, origin);
    YamlSection s = root.section(section);
    read_params(s, params, spec);
    s.finish();
    root.finish();
  }
  return others;
}

}  // namespace udc::common
