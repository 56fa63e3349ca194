#include "mpi_world.hpp"

#include <mpi.h>

#include <fmt/format.h>

#include <climits>
#include <cstdlib>
#include <stdexcept>

namespace udc::tool {
namespace {

/// The integer in `name`, or none when unset; throws naming it when malformed.
std::optional<long> integer_variable(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 0 || value > INT_MAX) {
    throw std::invalid_argument(
        fmt::format("environment variable {}='{}': expected a non-negative integer", name, text));
  }
  return value;
}

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, message, &length);
  throw std::runtime_error(fmt::format("MPI: {} failed: {}", what, message));
}

}  // namespace

std::optional<MpiPlace> mpi_place_from_environment() {
  const std::optional<long> rank = integer_variable("OMPI_COMM_WORLD_RANK");
  const std::optional<long> size = integer_variable("OMPI_COMM_WORLD_SIZE");
  if (!rank || !size || *size <= 1) return std::nullopt;
  if (*rank >= *size) {
    throw std::invalid_argument(
        fmt::format("OMPI_COMM_WORLD_RANK={} is not below OMPI_COMM_WORLD_SIZE={}", *rank, *size));
  }
  return MpiPlace{uint32_t(*rank), uint32_t(*size)};
}

std::vector<std::string> gather_on_rank0(const std::string& mine) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) check(MPI_Init(nullptr, nullptr), "MPI_Init");
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (mine.size() > size_t(INT_MAX)) throw std::runtime_error("MPI: a rank's results exceed 2 GiB");
  const int length = int(mine.size());
  std::vector<int> lengths(static_cast<size_t>(size), 0), offsets(static_cast<size_t>(size), 0);
  check(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD),
        "MPI_Gather of the result sizes");
  std::string all;
  if (rank == 0) {
    long long total = 0;
    for (int r = 0; r < size; ++r) {
      offsets[size_t(r)] = int(total);
      total += lengths[size_t(r)];
    }
    if (total > INT_MAX) throw std::runtime_error("MPI: the results exceed 2 GiB");
    all.resize(size_t(total));
  }
  check(MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                    MPI_CHAR, 0, MPI_COMM_WORLD),
        "MPI_Gatherv of the results");
  check(MPI_Finalize(), "MPI_Finalize");
  std::vector<std::string> parts;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      parts.push_back(all.substr(size_t(offsets[size_t(r)]), size_t(lengths[size_t(r)])));
    }
  }
  return parts;
}

}  // namespace udc::tool
