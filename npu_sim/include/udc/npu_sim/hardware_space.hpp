// A space of NPU configurations: choices over declared NPU and system parameters, each
// option one value of a parameter or a set of them that go together (a MAC array with its
// micro-block, its shared-buffer granules and output rate: an NPU file). Sweeps measure its
// whole grid; the co-search learns a distribution over it. Read from YAML:
//
//   npu.shared_buffer_bytes: [16384, 49152]    # a parameter: its values
//   mac_array:                                 # a named choice: its options, each a map
//     - {file: ../npu/ethos-u55-64.yaml}       #   an NPU or system file (relative to this one),
//     - {file: ../npu/ethos-u55-128.yaml, npu.weight_decoders: 2}   # then parameters
//
// A candidate applies one option of every choice, in the order written, onto a base
// configuration.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "udc/common/yaml_section.hpp"
#include "udc/npu_sim/config.hpp"

namespace udc::npu_sim {

/// One option of a choice: files applied first, then parameter assignments.
struct HardwareOption {
  /// As the option is shown in tables and CSV columns: the value of a parameter choice, or
  /// the file's stem and the assignments ("ethos-u55-64 npu.weight_decoders=2").
  std::string label;
  std::vector<std::string> files;                                ///< paths, resolved
  std::vector<std::pair<std::string, std::string>> assignments;  ///< full dotted key, value
};

struct HardwareChoice {
  std::string name;  ///< the parameter's key, or the named choice's name
  std::vector<HardwareOption> options;
};

struct HardwareSpace {
  std::string file;  ///< where it was read from, for messages
  std::vector<HardwareChoice> choices;

  /// Number of candidates: the product of the choices' option counts (1 without choices).
  size_t size() const;
  /// The option of every choice of candidate `index` (the last choice varies fastest).
  std::vector<size_t> options_of(size_t index) const;
  /// The candidate of one option per choice.
  size_t index_of(const std::vector<size_t>& options) const;
  /// `base` with candidate `index`'s options applied in choice order (not checked for
  /// consistency across parameters: check_consistency() says whether it is).
  NpuConfig configure(const NpuConfig& base, size_t index) const;
  /// "mac_array=ethos-u55-64 npu.shared_buffer_bytes=16384".
  std::string describe(size_t index) const;
  /// The space of candidate `index` alone: every choice keeps only that candidate's option
  /// (a search of the network alone on one NPU of a co-search's space).
  HardwareSpace only(size_t index) const;
};

/// Reads a map of choices (the search config's `hardware:`, the sweep file's
/// `parameters:`); every value is checked by its parameter, every file loaded, so errors
/// name the file, line and key. At most `max_candidates` candidates.
HardwareSpace read_hardware_space(common::YamlSection& section, size_t max_candidates = 4096);

}  // namespace udc::npu_sim
