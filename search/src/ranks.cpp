// Ranks (ranks.hpp) on LibTorch's c10d: a TCPStore served by rank 0 for the rendezvous and a
// ProcessGroupGloo for the collectives; and the collectives on tensors (collectives.hpp).
#include <unistd.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "collectives.hpp"
#include "udc/common/file_io.hpp"

namespace udc::search {

namespace {

using Lookup = std::function<std::optional<std::string>(const std::string&)>;

std::optional<std::string> getenv_lookup(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

/// The integer in variable `name`, within [lo, hi]; throws naming the variable.
int64_t integer_variable(const Lookup& lookup, const std::string& name, int64_t lo, int64_t hi) {
  const std::string text = lookup(name).value_or("");
  size_t used = 0;
  int64_t value = 0;
  bool ok = !text.empty();
  if (ok) {
    try {
      value = std::stoll(text, &used);
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || used != text.size() || value < lo || value > hi) {
    throw std::invalid_argument(
        fmt::format("environment variable {}='{}': expected an integer "
                    "from {} to {}",
                    name, text, lo, hi));
  }
  return value;
}

/// How long the surviving ranks wait, after a failed collective, for each other to say they
/// are still running; whoever has not said so by then is reported gone [s].
constexpr auto kRollCallWait = std::chrono::seconds(3);
/// Rank 0 serves the store this much longer, so that the others can finish their roll call.
constexpr auto kStoreLinger = std::chrono::seconds(3);

std::string this_process() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown host");
  return fmt::format("{}, pid {}", host, getpid());
}

}  // namespace

Rendezvous rendezvous_from_environment(const Lookup& given_lookup) {
  const Lookup lookup = given_lookup ? given_lookup : Lookup(getenv_lookup);
  Rendezvous r;
  constexpr int64_t kMaxRanks = 1 << 16;
  if (lookup("UDC_RANK_TIMEOUT")) {
    r.timeout = std::chrono::seconds(integer_variable(lookup, "UDC_RANK_TIMEOUT", 1, 86400 * 7));
  }
  auto read_address = [&](bool required) {
    if (auto address = lookup("MASTER_ADDR"); address && !address->empty()) {
      r.address = *address;
    } else if (required) {
      throw std::invalid_argument(fmt::format(
          "environment variable MASTER_ADDR is not set: a run of {} ranks ({}) needs the host "
          "of rank 0, where the ranks meet (with mpirun: -x MASTER_ADDR=<host>)",
          r.world_size, r.source));
    }
  };
  auto read_port = [&](bool required) {
    if (lookup("MASTER_PORT") || required) {
      r.port = uint16_t(integer_variable(lookup, "MASTER_PORT", 1, 65535));
    } else {
      r.port = kDefaultRendezvousPort;
    }
  };
  if (lookup("WORLD_SIZE") || lookup("RANK")) {
    r.source = "torchrun variables";
    r.world_size = uint32_t(integer_variable(lookup, "WORLD_SIZE", 1, kMaxRanks));
    r.rank = uint32_t(integer_variable(lookup, "RANK", 0, r.world_size - 1));
    if (r.world_size > 1) {
      read_address(true);
      read_port(true);
    }
    return r;
  }
  if (lookup("OMPI_COMM_WORLD_SIZE") || lookup("OMPI_COMM_WORLD_RANK")) {
    r.source = "OpenMPI (mpirun)";
    r.world_size = uint32_t(integer_variable(lookup, "OMPI_COMM_WORLD_SIZE", 1, kMaxRanks));
    r.rank = uint32_t(integer_variable(lookup, "OMPI_COMM_WORLD_RANK", 0, r.world_size - 1));
    const bool one_host =
        lookup("OMPI_COMM_WORLD_LOCAL_SIZE") &&
        integer_variable(lookup, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, kMaxRanks) == r.world_size;
    if (r.world_size > 1) {
      read_address(!one_host);
      read_port(false);
    }
    return r;
  }
  return r;
}

struct Ranks::Group {
  Rendezvous rendezvous;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::vector<std::string> processes;  ///< "host, pid N" of each rank

  std::string describe(uint32_t rank) const {
    return fmt::format("rank {} of {} ({})", rank, rendezvous.world_size,
                       rank < processes.size() ? processes[rank] : "not yet joined");
  }

  /// Runs a collective `collective`; when it throws, finds out which ranks are gone and
  /// throws an error naming them and `what`.
  template <class Collective>
  void run(const std::string& what, Collective&& collective) {
    try {
      collective();
    } catch (const std::exception& error) {
      throw std::runtime_error(diagnose(what, error.what()));
    }
  }

  /// The surviving ranks each leave a key in rank 0's store and, after a pause, read the
  /// others': the ranks without a key are gone. When the store itself no longer answers,
  /// rank 0 is.
  std::string diagnose(const std::string& what, const std::string& error) {
    const uint32_t me = rendezvous.rank;
    std::vector<uint32_t> gone;
    try {
      store->setTimeout(std::chrono::milliseconds(2000));
      store->set(fmt::format("udc/running/{}", me), std::vector<uint8_t>{1});
      std::this_thread::sleep_for(kRollCallWait);
      for (uint32_t r = 0; r < rendezvous.world_size; ++r) {
        if (!store->check({fmt::format("udc/running/{}", r)})) gone.push_back(r);
      }
      if (me == 0) std::this_thread::sleep_for(kStoreLinger);
    } catch (const std::exception&) {
      return fmt::format(
          "{}: {} is gone: its store at {}:{} stopped answering during {} (first error: {})",
          describe(me), describe(0), rendezvous.address, rendezvous.port, what, error);
    }
    if (gone.empty()) {
      return fmt::format("{}: {} failed while every rank still runs: {}", describe(me), what,
                         error);
    }
    std::string names;
    for (uint32_t r : gone) names += (names.empty() ? "" : ", ") + describe(r);
    return fmt::format("{}: {} stopped during {} (died, or did not answer within {} s): {}",
                       describe(me), names, what, rendezvous.timeout.count(), error);
  }
};

Ranks::Ranks(Rendezvous rendezvous, std::unique_ptr<Group> group)
    : rendezvous_(std::move(rendezvous)), group_(std::move(group)) {}

Ranks::~Ranks() = default;

std::shared_ptr<Ranks> Ranks::single() {
  return std::shared_ptr<Ranks>(new Ranks(Rendezvous{}, nullptr));
}

std::shared_ptr<Ranks> Ranks::from_environment() {
  return join(rendezvous_from_environment());
}

std::shared_ptr<Ranks> Ranks::join(const Rendezvous& rendezvous) {
  if (rendezvous.world_size <= 1) return std::shared_ptr<Ranks>(new Ranks(rendezvous, nullptr));
  auto group = std::make_unique<Group>();
  group->rendezvous = rendezvous;
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(rendezvous.timeout);
  const std::string where = fmt::format("{}:{}", rendezvous.address, rendezvous.port);
  const std::string me = fmt::format("rank {} of {}", rendezvous.rank, rendezvous.world_size);
  try {
    c10d::TCPStoreOptions options;
    options.port = rendezvous.port;
    options.isServer = rendezvous.rank == 0;
    options.numWorkers = rendezvous.world_size;
    options.waitWorkers = true;
    options.timeout = timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(rendezvous.address, options);
  } catch (const std::exception& error) {
    throw std::runtime_error(fmt::format(
        "{} ({}): cannot {} the rendezvous store at {} (MASTER_ADDR, MASTER_PORT) within {} s: "
        "{}",
        me, rendezvous.source, rendezvous.rank == 0 ? "serve" : "reach", where,
        rendezvous.timeout.count(), error.what()));
  }
  try {
    group->store->set(fmt::format("udc/process/{}", rendezvous.rank), [] {
      const std::string text = this_process();
      return std::vector<uint8_t>(text.begin(), text.end());
    }());
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const bool loopback =
        rendezvous.address == "localhost" || rendezvous.address.rfind("127.", 0) == 0;
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    } else if (loopback) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    // The collectives here are few and small next to a training step's arithmetic.
    options->threads = 1;
    group->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, int(rendezvous.rank),
                                                              int(rendezvous.world_size), options);
    for (uint32_t r = 0; r < rendezvous.world_size; ++r) {
      const std::vector<uint8_t> text = group->store->get(fmt::format("udc/process/{}", r));
      group->processes.emplace_back(text.begin(), text.end());
    }
  } catch (const std::exception& error) {
    throw std::runtime_error(
        fmt::format("{} ({}): the ranks did not all connect through {} within "
                    "{} s: {}",
                    me, rendezvous.source, where, rendezvous.timeout.count(), error.what()));
  }
  return std::shared_ptr<Ranks>(new Ranks(rendezvous, std::move(group)));
}

std::string Ranks::label() const {
  return size() > 1 ? fmt::format("rank {} of {}", rank(), size()) : std::string();
}

void Ranks::barrier(const std::string& what) {
  if (!group_) return;
  // A one-element allreduce rather than Gloo's barrier: it fails the same way as every other
  // collective (and so is diagnosed the same way).
  torch::Tensor token = torch::zeros({1});
  sum_over_ranks(this, {token}, what);
}

int64_t Ranks::broadcast_value(int64_t value, const std::string& what) {
  if (!group_) return value;
  torch::Tensor tensor = torch::full({1}, value, torch::kInt64);
  broadcast_from_primary(this, {tensor}, what);
  return tensor.item<int64_t>();
}

std::string Ranks::broadcast_bytes(const std::string& bytes, const std::string& what) {
  if (!group_) return bytes;
  const int64_t size = broadcast_value(int64_t(bytes.size()), what);
  if (size == 0) return std::string();
  torch::Tensor buffer = torch::empty({size}, torch::kUInt8);
  if (primary()) std::memcpy(buffer.data_ptr(), bytes.data(), bytes.size());
  broadcast_from_primary(this, {buffer}, what);
  return std::string(static_cast<const char*>(buffer.data_ptr()), size_t(size));
}

std::optional<std::string> read_on_primary(Ranks* ranks, const std::string& path) {
  // The primary reads first and the others learn only its outcome: an error there must not
  // leave them waiting in a collective until the timeout.
  std::optional<std::string> bytes;
  std::string error;
  if (!ranks || ranks->primary()) {
    try {
      if (std::filesystem::exists(path)) {
        const std::vector<uint8_t> file = common::read_file(path);
        bytes.emplace(file.begin(), file.end());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!ranks || ranks->size() == 1) {
    if (!error.empty()) throw std::runtime_error(error);
    return bytes;
  }
  // -2: rank 0 could not read it; -1: no such file; else its size.
  const int64_t outcome = ranks->broadcast_value(!error.empty() ? -2
                                                 : bytes        ? int64_t(bytes->size())
                                                                : -1,
                                                 "reading " + path);
  if (outcome == -2) {
    throw std::runtime_error(ranks->primary() ? error : fmt::format("rank 0 cannot read {}", path));
  }
  if (outcome == -1) return std::nullopt;
  return ranks->broadcast_bytes(bytes.value_or(std::string()), path);
}

// ---------------------------------------------------------------- collectives

namespace {

/// Tensors of one dtype concatenated into one flat buffer, and copied back.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return torch::cat(flat);
}

void unflatten(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
  int64_t offset = 0;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(flat.slice(0, offset, offset + n).view_as(t));
    offset += n;
  }
}

void all_reduce(Ranks* ranks, const std::vector<torch::Tensor>& tensors, c10d::ReduceOp op,
                const std::string& what) {
  if (!several(ranks) || tensors.empty()) return;
  for (const auto& t : tensors) {
    if (t.scalar_type() != tensors[0].scalar_type()) {
      throw std::logic_error("all_reduce: tensors of different types in one call (" + what + ")");
    }
  }
  Ranks::Group& group = *ranks->group();
  const bool in_place = tensors.size() == 1 && tensors[0].is_contiguous();
  std::vector<torch::Tensor> buffer{in_place ? tensors[0].detach() : flatten(tensors)};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  group.run(what, [&] { group.gloo->allreduce(buffer, options)->wait(); });
  if (!in_place) unflatten(buffer[0], tensors);
}

struct SumOverRanksFunction : torch::autograd::Function<SumOverRanksFunction> {
  // The ranks travel as an integer: saved_data holds IValues, and Ranks is not one. It
  // outlives every graph built while training.
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& x,
                               int64_t ranks_address) {
    context->saved_data["ranks"] = ranks_address;
    torch::Tensor sum = x.detach().clone();
    sum_over_ranks(reinterpret_cast<Ranks*>(ranks_address), {sum}, "batch-norm statistics");
    return sum;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* context,
                                               torch::autograd::tensor_list gradients) {
    auto* ranks = reinterpret_cast<Ranks*>(context->saved_data["ranks"].toInt());
    torch::Tensor sum = gradients[0].contiguous().clone();
    sum_over_ranks(ranks, {sum}, "batch-norm gradients");
    return {sum, torch::Tensor()};
  }
};

}  // namespace

void sum_over_ranks(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                    const std::string& what) {
  all_reduce(ranks, tensors, c10d::ReduceOp::SUM, what);
}

void max_over_ranks(Ranks* ranks, const torch::Tensor& tensor, const std::string& what) {
  all_reduce(ranks, {tensor}, c10d::ReduceOp::MAX, what);
}

void broadcast_from_primary(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                            const std::string& what) {
  if (!several(ranks) || tensors.empty()) return;
  Ranks::Group& group = *ranks->group();
  const bool in_place = tensors.size() == 1 && tensors[0].is_contiguous();
  std::vector<torch::Tensor> buffer{in_place ? tensors[0].detach() : flatten(tensors)};
  group.run(what, [&] { group.gloo->broadcast(buffer)->wait(); });
  if (!in_place) unflatten(buffer[0], tensors);
}

torch::Tensor differentiable_sum_over_ranks(const torch::Tensor& x, Ranks* ranks) {
  if (!several(ranks)) return x;
  return SumOverRanksFunction::apply(x, reinterpret_cast<int64_t>(ranks));
}

void reduce_gradients(Ranks* ranks, const std::vector<torch::Tensor>& parameters) {
  if (!several(ranks)) return;
  std::vector<torch::Tensor> gradients;
  int64_t elements = 0;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    gradients.push_back(p.grad());
    elements += p.grad().numel();
  }
  // The same parameters must have gradients everywhere, or the buffers would not line up.
  torch::Tensor shape = torch::tensor({double(gradients.size()), double(elements)}, torch::kDouble);
  torch::Tensor shape_max = shape.clone();
  max_over_ranks(ranks, shape_max, "gradient shapes");
  if (!torch::equal(shape, shape_max)) {
    throw std::runtime_error(fmt::format(
        "{}: the ranks' gradients differ in shape ({} tensors of {} elements here, up to {} of "
        "{} on another rank): the ranks are not training the same network",
        ranks->label(), gradients.size(), elements, shape_max[0].item<double>(),
        shape_max[1].item<double>()));
  }
  if (gradients.empty()) return;
  torch::Tensor flat = flatten(gradients);
  sum_over_ranks(ranks, {flat}, "gradients");
  unflatten(flat, gradients);
}

void check_same_on_ranks(Ranks* ranks, const std::vector<torch::Tensor>& tensors,
                         const std::string& what) {
  if (!several(ranks)) return;
  // Position-weighted sums catch a swap as well as a changed value; summed in one plain
  // loop, so that equal tensors give equal sums whatever the ranks' thread counts.
  double sum = 0, weighted = 0;
  size_t position = 0;
  for (const auto& t : tensors) {
    const torch::Tensor flat = t.detach().reshape({-1}).to(torch::kDouble).contiguous();
    const double* values = flat.data_ptr<double>();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      sum += values[i];
      weighted += values[i] * double(++position % 1021 + 1);
    }
  }
  torch::Tensor extremes = torch::tensor({sum, -sum, weighted, -weighted}, torch::kDouble);
  max_over_ranks(ranks, extremes, what);
  if (extremes[0].item<double>() != -extremes[1].item<double>() ||
      extremes[2].item<double>() != -extremes[3].item<double>()) {
    throw std::runtime_error(fmt::format(
        "{}: the ranks' {} differ (sums from {:.17g} to {:.17g}): they no longer train the same "
        "network; run every rank with the same build, configuration and data",
        ranks->label(), what, -extremes[1].item<double>(), extremes[0].item<double>()));
  }
}

torch::Tensor synchronized_batch_norm(torch::nn::BatchNorm2d& norm, const torch::Tensor& y,
                                      Ranks* ranks) {
  if (!several(ranks) || !norm->is_training()) return norm->forward(y);
  const int64_t channels = y.size(1);
  // Sums in double: E[y^2] - E[y]^2 loses digits in float for channels far from zero.
  const torch::Tensor y64 = y.to(torch::kDouble);
  const torch::Tensor local =
      torch::cat({y64.sum({0, 2, 3}), (y64 * y64).sum({0, 2, 3}),
                  torch::full({1}, double(y.numel() / channels), torch::kDouble)});
  const torch::Tensor total = differentiable_sum_over_ranks(local, ranks);
  const double count = total[2 * channels].item<double>();
  const torch::Tensor mean = total.slice(0, 0, channels) / count;
  const torch::Tensor variance = total.slice(0, channels, 2 * channels) / count - mean * mean;
  const auto& options = norm->options;
  {
    torch::NoGradGuard no_grad;
    const double momentum = options.momentum().value_or(0.1);
    norm->running_mean.mul_(1 - momentum).add_(mean.to(torch::kFloat), momentum);
    norm->running_var.mul_(1 - momentum)
        .add_(variance.to(torch::kFloat) * (count / std::max(1.0, count - 1)), momentum);
    norm->num_batches_tracked.add_(1);
  }
  const std::vector<int64_t> shape{1, channels, 1, 1};
  const torch::Tensor inverse_std = torch::rsqrt(variance + options.eps()).to(y.scalar_type());
  torch::Tensor out = (y - mean.to(y.scalar_type()).view(shape)) * inverse_std.view(shape);
  if (options.affine()) out = out * norm->weight.view(shape) + norm->bias.view(shape);
  return out;
}

}  // namespace udc::search
