// What the data-parallel tests compute on one process and on several ranks alike: a small
// network with batch norm and an inverted residual, a fixed global batch, and one float
// and one quantised training step (search/src/collectives.hpp's contract: the gradients
// summed over the ranks' shares equal one process's gradient of the whole batch).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "collectives.hpp"
#include "qnet.hpp"
#include "udc/data/batch_loader.hpp"

namespace udc::search::probe {

/// Images in the global batch; 13 so that 2 and 3 ranks get unequal shares.
inline constexpr int64_t kProbeBatch = 13;

inline ArchitectureSpec probe_architecture() {
  ArchitectureSpec arch;
  arch.name = "probe";
  arch.height = arch.width = 10;
  arch.channels = 1;
  arch.classes = 10;
  auto layer = [](LayerKind kind, uint32_t out, uint32_t stride, uint32_t bits, uint32_t expansion,
                  ActivationKind activation) {
    LayerSpec spec;
    spec.kind = kind;
    spec.out_channels = out;
    spec.stride = stride;
    spec.weight_bits = bits;
    spec.expansion = expansion;
    spec.activation = activation;
    return spec;
  };
  arch.layers = {layer(LayerKind::Conv, 6, 2, 8, 1, ActivationKind::Relu),
                 layer(LayerKind::InvertedResidual, 6, 1, 4, 2, ActivationKind::Relu),
                 layer(LayerKind::GlobalAvgPool, 0, 1, 8, 1, ActivationKind::None),
                 layer(LayerKind::FullyConnected, 10, 1, 8, 1, ActivationKind::None)};
  for (size_t i = 0; i < arch.layers.size(); ++i) arch.layers[i].name = "l" + std::to_string(i);
  arch.layers[2].kernel = 1;
  return arch;
}

/// The whole global batch: images [kProbeBatch, 1, 10, 10] and labels.
struct ProbeBatch {
  torch::Tensor images, labels;
};
inline ProbeBatch probe_batch() {
  torch::manual_seed(11);
  return {torch::randn({kProbeBatch, 1, 10, 10}), torch::randint(0, 10, {kProbeBatch})};
}

/// The network as every rank builds it (the same seed: the same initial weights).
inline std::shared_ptr<QNet> probe_network() {
  torch::manual_seed(5);
  return std::make_shared<QNet>(probe_architecture(), data::Normalization{});
}

/// A float step (batch norm on the batch's statistics) and a quantised step that observes
/// activation ranges, on this rank's share of the batch; returns, in order, every
/// parameter's gradient of the float step, of the quantised step, then every buffer
/// (running batch-norm statistics, observed ranges) after both.
inline std::vector<torch::Tensor> probe_steps(QNet& net, Ranks* ranks) {
  const ProbeBatch whole = probe_batch();
  const data::BatchShare share = ranks
                                     ? data::batch_share(kProbeBatch, ranks->rank(), ranks->size())
                                     : data::BatchShare{0, size_t(kProbeBatch)};
  const torch::Tensor images = whole.images.narrow(0, int64_t(share.first), int64_t(share.count));
  const torch::Tensor labels = whole.labels.narrow(0, int64_t(share.first), int64_t(share.count));
  const double fraction = double(share.count) / double(kProbeBatch);
  std::vector<torch::Tensor> out;
  net.train();
  for (Mode mode : {Mode::Float, Mode::Quantized}) {
    if (mode == Mode::Quantized) {
      for (const auto& layer : net.weighted()) layer->initialize_step();
    }
    for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
    const QTensor logits = net.forward(images, {mode, mode == Mode::Quantized, 0.9, ranks});
    (torch::cross_entropy_loss(logits.x, labels) * fraction).backward();
    reduce_gradients(ranks, net.parameters());
    for (const auto& p : net.parameters()) {
      out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    }
  }
  for (const auto& b : net.buffers()) out.push_back(b.clone().to(torch::kDouble));
  return out;
}

}  // namespace udc::search::probe
