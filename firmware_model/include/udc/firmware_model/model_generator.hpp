// Synthetic integer models with random weights: property tests (random valid graphs) and
// a MobileNet-like network for benchmarks, sweeps and the README's examples. Weights are
// Gaussian-like integers of the requested bitwidth and sparsity; requantisation keeps
// activations in range, so outputs are informative rather than saturated.
#pragma once

#include <cstdint>
#include <random>

#include "udc/firmware_model/model.hpp"

namespace udc::firmware_model {

struct RandomModelOptions {
  uint32_t max_operations = 7;  ///< besides the input
  uint32_t max_side = 16;       ///< input height and width [elements]
  uint32_t max_channels = 32;
};

/// A random valid model: convolutions, depthwise, fully connected, residual adds,
/// pooling, global average pooling, reshape and depth-to-space, with random shapes,
/// strides, paddings, bitwidths (2..8), sparsity and activations.
Model random_model(std::mt19937& rng, const RandomModelOptions& options = {});

struct MobileNetOptions {
  uint32_t input_side = 96;  ///< square input [pixels]
  uint32_t input_channels = 3;
  uint32_t classes = 10;
  uint32_t weight_bits = 8;  ///< all layers but the first, which keeps 8
  double sparsity = 0.0;     ///< fraction of zero weights, all layers but the first
  uint32_t seed = 1;
};

/// A MobileNet-v1-like network (depthwise-separable blocks, one residual add, global
/// pooling and a classifier): about 9 M MACs at 96x96x3.
Model mobilenet_like(const MobileNetOptions& options = {});

struct EspcnOptions {
  uint32_t input_side = 32;  ///< square input tile [pixels] of the low-resolution image
  uint32_t weight_bits = 8;  ///< all layers but the first, which keeps 8
  double sparsity = 0.0;     ///< fraction of zero weights, all layers but the first
  uint32_t seed = 1;
};

/// An ESPCN-like x2 super-resolution network on one luminance channel: 5x5 conv to 64,
/// 3x3 conv to 32, 3x3 conv to 4, depth-to-space 2 (about 22 M MACs at a 32x32 tile).
/// Synthetic weights: a workload for the simulator, not a trained upscaler. Input and
/// output hold pixel / 255 in steps of 1/255 (zero point -128), as `udc eval` feeds them.
Model espcn_like(const EspcnOptions& options = {});

}  // namespace udc::firmware_model
