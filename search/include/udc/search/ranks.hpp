// The processes of a data-parallel run (`udc train` and `udc search` on several ranks, on one
// host or many): how they meet (the rendezvous, from the variables torchrun or OpenMPI's
// mpirun set) and the group they form, LibTorch's c10d process group over Gloo (TCP).
// Every rank trains on its share of each global batch; gradients, batch-norm statistics and
// activation ranges are summed over the ranks so that every rank holds the same network;
// rank 0 alone writes files. Torch-free interface (the collectives on tensors are in
// search/src/collectives.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace udc::search {

/// Where this process stands in a run and where the ranks meet.
struct Rendezvous {
  uint32_t rank = 0;        ///< this process, 0 .. world_size - 1
  uint32_t world_size = 1;  ///< processes in the run [ranks]
  /// Host and TCP port of rank 0's store, where the ranks exchange their addresses.
  std::string address = "127.0.0.1";
  uint16_t port = 29500;
  /// Longest wait for a collective or for the ranks to join; a rank that stops answering
  /// ends the others with an error after it [s]. Generous by default: rank 0 alone exports
  /// and verifies while the others wait.
  std::chrono::seconds timeout{1800};
  /// Where the figures came from, for messages: "torchrun variables", "OpenMPI (mpirun)"
  /// or "one process".
  std::string source = "one process";
};

/// Default TCP port of the store when the environment names none (torchrun's).
inline constexpr uint16_t kDefaultRendezvousPort = 29500;

/// Reads the rendezvous from the environment (`lookup`: getenv by default):
/// - torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (all four when WORLD_SIZE > 1);
/// - else OpenMPI's OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE, with MASTER_ADDR
///   (default 127.0.0.1 when every rank is on this host, OMPI_COMM_WORLD_LOCAL_SIZE equal
///   to the world size; else required) and MASTER_PORT (default 29500);
/// - else one process.
/// UDC_RANK_TIMEOUT sets Rendezvous::timeout [s]. Throws std::invalid_argument naming the
/// variable and what was expected when one is malformed, out of range or missing.
Rendezvous rendezvous_from_environment(
    const std::function<std::optional<std::string>(const std::string&)>& lookup = {});

/// The ranks of a run, joined. One object per process, shared by whatever trains.
class Ranks {
 public:
  /// The process group of one process (no communication).
  static std::shared_ptr<Ranks> single();
  /// Joins the run: blocks until every rank has joined (or throws after the timeout, naming
  /// the address and the ranks missing). World size 1 needs no store.
  static std::shared_ptr<Ranks> join(const Rendezvous& rendezvous);
  /// rendezvous_from_environment() joined.
  static std::shared_ptr<Ranks> from_environment();
  ~Ranks();
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  uint32_t rank() const { return rendezvous_.rank; }
  uint32_t size() const { return rendezvous_.world_size; }
  /// Rank 0: the one that writes checkpoints, outputs and progress.
  bool primary() const { return rendezvous_.rank == 0; }
  const Rendezvous& rendezvous() const { return rendezvous_; }
  /// "rank R of N" (empty for one process), to prefix messages with.
  std::string label() const;

  /// Waits until every rank arrives; `what` names the point in errors.
  void barrier(const std::string& what);
  /// Rank 0's `value` on every rank (e.g. a decision only rank 0 can take).
  int64_t broadcast_value(int64_t value, const std::string& what);
  /// Rank 0's bytes on every rank (a checkpoint that only rank 0's disk holds).
  std::string broadcast_bytes(const std::string& bytes, const std::string& what);

  /// Internal: the c10d group and the error handling of the collectives
  /// (search/src/collectives.hpp); null for one process.
  struct Group;
  Group* group() const { return group_.get(); }

 private:
  Ranks(Rendezvous rendezvous, std::unique_ptr<Group> group);
  Rendezvous rendezvous_;
  std::unique_ptr<Group> group_;
};

/// The bytes of the file `path` as rank 0's disk holds them, on every rank; none when rank 0
/// has no such file. The ranks' disks need not be shared: what rank 0 wrote (checkpoints,
/// the derivation) reaches the others this way. `ranks` null: one process, its own disk.
/// Throws naming the file when rank 0 cannot read it.
std::optional<std::string> read_on_primary(Ranks* ranks, const std::string& path);

}  // namespace udc::search
