// Training pieces shared by `udc train` and the search (internal; includes Torch).
#pragma once

#include <cstdint>
#include <vector>

#include "qnet.hpp"
#include "udc/data/batch_loader.hpp"

namespace udc::search {

/// Before the first quantised step: LSQ steps from the weights, activation ranges
/// calibrated on a few training batches.
void prepare_quantization(QNet& net, const data::ImageDataset& train_set,
                          const data::Normalization& normalization, uint32_t batch_size,
                          uint64_t seed);

struct Evaluation {
  double accuracy = 0;                      ///< top-1 [fraction]
  std::vector<std::vector<int8_t>> logits;  ///< integer logits of the first images (Quantized)
};
/// Top-1 accuracy on `set` in `mode`; keeps the integer logits of the first `keep_logits`.
Evaluation evaluate(QNet& net, const data::ImageDataset& set,
                    const data::Normalization& normalization, Mode mode, size_t batch_size,
                    size_t keep_logits);

/// Weight stream bytes of a model, by our encoder.
uint64_t compressed_weight_bytes(const firmware_model::Model& model);

}  // namespace udc::search
