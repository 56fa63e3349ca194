// Where a configuration comes from: files applied in order over built-in defaults, then
// KEY=VALUE overrides. The command line (--npu FILE... --set KEY=VALUE...) and configs
// (`npu:` and `npu_set:`) say the same thing with it, and reports record it.
#pragma once

#include <string>
#include <vector>

namespace udc::common {

struct ConfigSource {
  std::vector<std::string> files;      ///< applied in order over the built-in defaults
  std::vector<std::string> overrides;  ///< KEY=VALUE, applied after the files

  bool empty() const { return files.empty() && overrides.empty(); }
  /// The files joined by " + ", then ", set " and the overrides ("built-in defaults" with
  /// no files): one file and no overrides is just its path.
  std::string describe() const;
  /// This source as a command line changes it: its files, when it names any, replace
  /// ours with our overrides (a different NPU is a new choice); its overrides apply last.
  ConfigSource overridden_by(const ConfigSource& command_line) const;
};

}  // namespace udc::common
