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

enum class ParamType {
  Integer,  ///< a whole number in [min, max]
  Real,     ///< a finite number in [min, max]
  Choice,   ///< one of `choices`
  Text,     ///< any non-empty text (a name)
};

/// One parameter of a configuration struct `Spec`. Every way of reading or writing it
/// (YAML file, --set, sweep axis, written config, listing, fingerprint) goes through `text`
/// and `set`, so the checks and the messages are the same everywhere.
template <typename Spec>
struct Param {
  std::string key;  ///< dotted within its section ("warmup.epochs" is `epochs` of `warmup:`)
  ParamType type = ParamType::Real;
  double min = 0, max = 0;           ///< inclusive range (Integer, Real)
  std::vector<std::string> choices;  ///< accepted values (Choice)
  std::string unit;                  ///< e.g. "images", "steps", "1/step"; empty: none
  std::string help;
  /// The value as text that `set` reads back to the same value (YAML scalar).
  std::function<std::string(const Spec&)> text;
  /// Integer and Real: the value as a number (sweep size formulas); empty otherwise.
  std::function<double(const Spec&)> number;
  /// Sets the value from text after its type's checks; returns "" when set, else what was
  /// expected ("expected an integer 1..4, got '9'"), the value left unchanged.
  std::function<std::string(Spec&, const std::string& value)> set;
};

/// Shortest text that reads back as the same double; an integer as written.
std::string param_number_text(double value);
std::string param_integer_text(int64_t value);
/// One line of a parameter listing (params_listing()).
std::string format_param_line(const std::string& key, const std::string& value,
                              const std::string& unit, const std::string& help,
                              const std::string& range);
/// Splits "KEY=VALUE"; throws ConfigError naming `origin` when there is no '=' or no key.
std::pair<std::string, std::string> split_assignment(const std::string& assignment,
                                                     const std::string& origin);

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
  p.number = [access](const Spec& s) { return static_cast<double>(access(s)); };
  p.text = [access](const Spec& s) {
    if constexpr (std::is_integral_v<T>) {
      return param_integer_text(static_cast<int64_t>(access(s)));
    } else {
      return param_number_text(static_cast<double>(access(s)));
    }
  };
  p.set = [access, min, max](Spec& s, const std::string& text) {
    if constexpr (std::is_integral_v<T>) {
      int64_t value = 0;
      std::string error =
          parse_integer_param(text, static_cast<int64_t>(min), static_cast<int64_t>(max), value);
      if (error.empty()) access(s) = static_cast<T>(value);
      return error;
    } else {
      double value = 0;
      std::string error = parse_real_param(text, min, max, value);
      if (error.empty()) access(s) = static_cast<T>(value);
      return error;
    }
  };
  return p;
}

/// A parameter with named values, stored as an enum; `names[i]` names value i.
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
  p.set = [access, names](Spec& s, const std::string& text) {
    size_t index = 0;
    std::string error = parse_choice_param(text, names, index);
    if (error.empty()) access(s) = static_cast<T>(index);
    return error;
  };
  return p;
}

/// A parameter stored as text: one of `choices`, or any non-empty name when there are none.
template <typename Spec, typename Access>
Param<Spec> text_param(std::string key, Access access, std::vector<std::string> choices,
                       std::string help) {
  Param<Spec> p;
  p.key = std::move(key);
  p.type = choices.empty() ? ParamType::Text : ParamType::Choice;
  p.choices = choices;
  p.help = std::move(help);
  p.text = [access](const Spec& s) { return std::string(access(s)); };
  p.set = [access, choices](Spec& s, const std::string& text) {
    if (text.empty()) return std::string("expected a non-empty name");
    size_t index = 0;
    if (!choices.empty()) {
      if (std::string error = parse_choice_param(text, choices, index); !error.empty()) {
        return error;
      }
    }
    access(s) = text;
    return std::string();
  };
  return p;
}

/// The parameter whose full key is `key`; nullptr when none is.
template <typename Spec>
const Param<Spec>* find_param(const std::vector<Param<Spec>>& params, const std::string& key) {
  for (const Param<Spec>& p : params) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

/// Sets parameter `key` (full dotted key) from `value`; throws ConfigError
/// "ORIGIN: NAME: problem", NAME being `key` prefixed by `section` when given.
template <typename Spec>
void set_param_text(const std::vector<Param<Spec>>& params, Spec& spec, const std::string& key,
                    const std::string& value, const std::string& origin,
                    const std::string& section = "") {
  const std::string name = section.empty() ? key : section + "." + key;
  const Param<Spec>* p = find_param(params, key);
  if (!p) throw ConfigError(origin + ": " + name + ": unknown parameter (see --list-params)");
  if (std::string error = p->set(spec, value); !error.empty()) {
    throw ConfigError(origin + ": " + name + ": " + error);
  }
}

/// The parameters whose key starts with `prefix` + ".", keys stripped of it: a section's
/// parameters out of a list that spans several sections.
template <typename Spec>
std::vector<Param<Spec>> params_under(const std::vector<Param<Spec>>& params,
                                      const std::string& prefix) {
  std::vector<Param<Spec>> inner;
  for (const Param<Spec>& p : params) {
    if (p.key.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
    Param<Spec> q = p;
    q.key = p.key.substr(prefix.size() + 1);
    inner.push_back(std::move(q));
  }
  return inner;
}

namespace detail {
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
        const bool given = section.has(p.key);
        const std::string value = section.string(p.key, "");  // marks the key read
        if (given) {
          if (std::string error = p.set(spec, value); !error.empty()) section.fail(p.key, error);
        }
        leaf = true;
      }
    }
    if (leaf) continue;
    YamlSection sub = section.section(group);
    read_params(sub, params_under(params, group), spec);
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
    for (const Param<Spec>& p : params_under(params, group)) {
      inner += (inner.empty() ? "" : ", ") + p.key + ": " + p.text(spec);
    }
    yaml += "{" + inner + "}\n";
  }
  return yaml;
}

/// One line per parameter: `section.key` (the key alone when `section` is empty), current
/// value, unit, help with the default (a default-constructed Spec's value) and the range or
/// choices.
template <typename Spec>
std::string params_listing(const std::vector<Param<Spec>>& params, const Spec& spec,
                           const std::string& section) {
  const Spec defaults{};
  std::string lines;
  for (const Param<Spec>& p : params) {
    std::string range;
    if (p.type == ParamType::Choice) {
      for (const std::string& c : p.choices) range += (range.empty() ? "" : ", ") + c;
    } else if (p.type != ParamType::Text) {
      range = (p.type == ParamType::Integer ? param_integer_text(int64_t(p.min))
                                            : param_number_text(p.min)) +
              " .. " +
              (p.type == ParamType::Integer ? param_integer_text(int64_t(p.max))
                                            : param_number_text(p.max));
    }
    lines += format_param_line(section.empty() ? p.key : section + "." + p.key, p.text(spec),
                               p.unit, p.help + " (default " + p.text(defaults) + ")", range);
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
    const auto [key, value] = split_assignment(a, origin);
    if (key.compare(0, section.size() + 1, section + ".") != 0) {
      others.push_back(a);
      continue;
    }
    set_param_text(params, spec, key.substr(section.size() + 1), value, origin, section);
  }
  return others;
}

}  // namespace udc::common
