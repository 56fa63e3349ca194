// Collectives on tensors over the ranks of a data-parallel run (internal; includes Torch).
// Every function takes `Ranks*`: null, or a group of one, is one process and costs nothing.
// A collective that fails (a rank died or stopped answering) throws std::runtime_error that
// names the rank(s) gone, the host and process of each, and `what` was being summed.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "udc/search/ranks.hpp"

namespace udc::search {

/// True when `ranks` has more than one rank.
inline bool several(const Ranks* ranks) {
  return ranks != nullptr && ranks->size() > 1;
}

/// Sums each of `tensors` over the ranks, in place (float or double; one coalesced
/// allreduce).
void sum_over_ranks(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                    const std::string& what);
/// The elementwise maximum over the ranks, in place.
void max_over_ranks(Ranks* ranks, const torch::Tensor& tensor, const std::string& what);
/// Rank 0's values of `tensors` on every rank, in place.
void broadcast_from_primary(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                            const std::string& what);

/// The sum over the ranks of `x`, differentiable: the backward pass sums the incoming
/// gradient over the ranks too, so that a quantity computed from every rank's share of a
/// batch (batch-norm statistics) passes each rank's loss back to every rank's images.
torch::Tensor differentiable_sum_over_ranks(const torch::Tensor& x, Ranks* ranks);

/// After backward() on `share` x this rank's loss, where `share` is the rank's part of the
/// global batch's loss (loss_share in training.hpp: its images over the batch's, for a loss
/// that is a mean over images): every parameter's gradient becomes the sum over the ranks,
/// which is the gradient of the whole global batch's loss on one process. The loss is
/// scaled before backward(), not the gradients after it: the gradients that pass through
/// differentiable_sum_over_ranks (batch-norm statistics) are every rank's loss's, which the
/// rank's own share must not scale again. Parameters without a gradient keep none (the
/// optimiser skips them); the set must be the same on every rank (checked: an error
/// otherwise).
void reduce_gradients(Ranks* ranks, const std::vector<torch::Tensor>& parameters);

/// Checks that `tensors` hold the same values on every rank (a fingerprint of them compared
/// over the ranks); throws naming `what` when they do not. The ranks take identical steps
/// from identical sums, so this catches a rank that computes differently (another build,
/// another configuration) before its results are mixed into the others'.
void check_same_on_ranks(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                         const std::string& what);

/// Training-mode batch norm over the whole global batch, whose shares are on the ranks:
/// the mean and biased variance of every channel summed over the ranks (differentiable),
/// the running statistics updated as BatchNorm2d does (momentum, unbiased variance), so
/// that they stay equal on every rank. On one process: `norm->forward(y)`.
torch::Tensor synchronized_batch_norm(torch::nn::BatchNorm2d& norm, const torch::Tensor& y,
                                      Ranks* ranks);

}  // namespace udc::search
