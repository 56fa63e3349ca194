// Reproducible synthetic weight tensors with the distributions of the codec's test
// vectors, for demos, tests and benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace udc::compression {

/// Generates `count` int8 weights of a named distribution:
///   gaussB_S  Gaussian with sigma = qmax/3 rounded and clipped to +-qmax, qmax = 2^(B-1)-1
///             (B in 2..8), then S percent of positions pruned to zero (S in 0..100)
///   uniform8  uniform over -128..127
///   runs      isolated values from {-1, 1, 127, -128} between geometric zero runs (mean 32)
///   pal4x     multiples of 16 in -112..112, 35 % zeros (a 4-bit palette, scaled)
///   zeros     all zero
///   const     all -3
/// Throws std::invalid_argument for an unknown name, listing the valid ones.
std::vector<int8_t> synthetic_weights(const std::string& distribution, size_t count, uint64_t seed);

/// The distributions the benchmarks and the demo sweep.
const std::vector<std::string>& standard_distributions();

}  // namespace udc::compression
