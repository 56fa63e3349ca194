// Latency and SRAM cost tables of a search space on one NPU (internal to search/; no Torch).
//
// Every candidate of every block (operator x input width x output width x bitwidth x
// sparsity) is built as a one-block model with synthetic weights of that bitwidth and
// sparsity, compiled for the NPU and simulated in timing-only mode. The tables are cached
// in a JSON file keyed by a fingerprint of the NPU parameters and the space, so a search
// on the same NPU measures them once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "udc/npu_sim/config.hpp"
#include "udc/search/search_config.hpp"

namespace udc::search {

/// Spatial size of a block's input and output, and its input width choices.
struct BlockGeometry {
  uint32_t in_height = 0, in_width = 0, out_height = 0, out_width = 0;
  std::vector<uint32_t> in_widths;  ///< the previous block's widths (image channels first)
};
/// Geometry of every block of `space` (classifier included).
std::vector<BlockGeometry> block_geometry(const SearchSpace& space);

/// Index of a candidate in a block's table laid out [op][in width][out width][bits][sparsity].
struct TableShape {
  size_t ops = 0, in_widths = 0, out_widths = 0, bits = 0, sparsity = 0;
  size_t size() const { return ops * in_widths * out_widths * bits * sparsity; }
  size_t index(size_t o, size_t i, size_t j, size_t b, size_t s) const {
    return (((o * in_widths + i) * out_widths + j) * bits + b) * sparsity + s;
  }
};
TableShape table_shape(const SearchSpace& space, size_t block);

struct BlockHardwareTable {
  std::vector<double> cycles;      ///< [cycles] per candidate; 0 for skip
  std::vector<double> sram_bytes;  ///< activation arena of the one-block model [bytes]
  std::vector<uint8_t> fits;       ///< 0 where the candidate does not fit the NPU
};

struct HardwareTables {
  std::vector<BlockHardwareTable> blocks;
  double core_clock_hz = 0;
  bool from_cache = false;
  double seconds = 0;  ///< time spent measuring (0 when cached)
};

/// Measures (or reads from `cache_path`, and then writes it) the tables of `space` on `npu`.
/// An empty cache path measures without caching.
HardwareTables measure_hardware_tables(const SearchSpace& space, const npu_sim::NpuConfig& npu,
                                       const std::string& cache_path);

}  // namespace udc::search
