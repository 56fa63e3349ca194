// The MPI world of a `udc` command started by mpirun (OpenMPI), for commands that split their
// work over the ranks and collect it on rank 0 (`udc sweep`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace udc::tool {

/// This process's place in an mpirun launch, read from OpenMPI's variables
/// (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE) without initialising MPI; none when not
/// started by mpirun or when the world has one process. Throws std::invalid_argument naming
/// a malformed variable.
struct MpiPlace {
  uint32_t rank = 0, size = 1;
};
std::optional<MpiPlace> mpi_place_from_environment();

/// Every rank's `mine`, in rank order, on rank 0 (empty on the others). Initialises MPI
/// here, once the work is done: the work forks worker processes, which MPI may not survive
/// once initialised. Throws std::runtime_error when MPI fails.
std::vector<std::string> gather_on_rank0(const std::string& mine);

}  // namespace udc::tool
