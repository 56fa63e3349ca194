// Latency and SRAM cost tables of a search space on one NPU (internal to search/; no Torch).
//
// Every uniform candidate of every block (operator x input width x output width x bitwidth x
// sparsity, every layer of the block at that bitwidth and sparsity) is built as a one-block
// model with synthetic weights (then, during a search, with the supernet's current ones:
// remeasure_cycles), compiled for the NPU and simulated in timing-only mode; its
// cycles are split over its weighted layers, so blocks whose layers differ are costed too. The
// tables are cached in a JSON file keyed by a fingerprint of the NPU parameters and the space, so a
// search on the same NPU measures them once.
#pragma once

#include <cstdint>
#include <functional>
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

/// The layout of a block's tables. Per-layer tables (flash bytes, cycles) are laid out
/// [op][layer][in width][out width][bits][sparsity], `layers` being the most weighted layers
/// of any of the block's operators (unused slots hold 0). Tables of whole uniform
/// candidates (every layer of the block at the same bits and sparsity: SRAM, fit) are laid
/// out [op][in width][out width][bits][sparsity].
struct TableShape {
  size_t ops = 0, layers = 0, in_widths = 0, out_widths = 0, bits = 0, sparsity = 0;
  size_t size() const { return ops * layers * in_widths * out_widths * bits * sparsity; }
  size_t index(size_t o, size_t l, size_t i, size_t j, size_t b, size_t s) const {
    return ((((o * layers + l) * in_widths + i) * out_widths + j) * bits + b) * sparsity + s;
  }
  size_t uniform_size() const { return ops * in_widths * out_widths * bits * sparsity; }
  size_t uniform_index(size_t o, size_t i, size_t j, size_t b, size_t s) const {
    return (((o * in_widths + i) * out_widths + j) * bits + b) * sparsity + s;
  }
};
TableShape table_shape(const SearchSpace& space, size_t block);

struct BlockHardwareTable {
  /// [cycles] per layer candidate (TableShape::index): the layer's share of its uniform
  /// candidate's cycles, in proportion to the time its operations ran (a weightless
  /// operation, the residual add or the pooling, counts with its weighted neighbour). The
  /// shares of a uniform candidate add up to its measured cycles; a block with mixed bits
  /// and sparsity is costed as the sum of its layers' shares.
  std::vector<double> cycles;
  /// Output channels per weight block the compiler chose for each layer candidate
  /// (TableShape::index; it does not depend on the weights, bits or sparsity).
  std::vector<uint32_t> block_depth;
  /// Activation arena of the one-block model [bytes] per uniform candidate
  /// (TableShape::uniform_index).
  std::vector<double> sram_bytes;
  /// Per uniform candidate: 0 where it does not fit the NPU.
  std::vector<uint8_t> fits;
};

struct HardwareTables {
  std::vector<BlockHardwareTable> blocks;
  double core_clock_hz = 0;
  bool from_cache = false;
  double seconds = 0;  ///< time spent measuring (0 when cached)
};

/// The int8 weights (the model's layout) of weighted layer `layer` of operator `op` of block
/// `block`, at input width index `in_width` and output width index `out_width`, quantised to
/// `bits` and pruned to `sparsity` (0 for layers that stay dense).
using CandidateWeights =
    std::function<std::vector<int8_t>(size_t block, size_t op, size_t layer, size_t in_width,
                                      size_t out_width, uint32_t bits, double sparsity)>;

/// Measures every block's cycles again with `weights` (a supernet's current ones) instead of
/// synthetic ones: the decoder's time, and so a layer's, follows its streams' content.
/// SRAM, fit and block depths do not depend on the weights and are kept. Sets `tables.seconds`.
void remeasure_cycles(HardwareTables& tables, const SearchSpace& space,
                      const npu_sim::NpuConfig& npu, const CandidateWeights& weights);

/// Measures (or reads from `cache_path`, and then writes it) the tables of `space` on `npu`.
/// An empty cache path measures without caching.
HardwareTables measure_hardware_tables(const SearchSpace& space, const npu_sim::NpuConfig& npu,
                                       const std::string& cache_path);

}  // namespace udc::search
