#include "udc/common/file_io.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace udc::common {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(path + ": cannot open for reading: " + std::strerror(errno));
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return bytes;
}

namespace {

constexpr const char* kTemporaryInfix = ".tmp.";

/// Flushes a file or folder to the disk; a rename is only durable once its folder is.
bool sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

void write_file_atomically(const std::string& path, const uint8_t* data, size_t size) {
  // The process id keeps concurrent writers (parallel sweeps) off each other's temporary,
  // and lets remove_stale_temporaries tell a dead writer's from a live one's.
  const std::string temporary = path + kTemporaryInfix + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(temporary + ": cannot open for writing: " + std::strerror(errno));
  }
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, data + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += size_t(n);
  }
  // Data on the disk before the rename makes it visible: a crash leaves the old file or
  // the new one, never a torn one.
  const bool synced = written == size && ::fsync(fd) == 0;
  const std::string reason = std::strerror(errno);
  ::close(fd);
  if (!synced) {
    std::remove(temporary.c_str());
    throw std::runtime_error(temporary + ": write error (" + reason + ")");
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temporary.c_str());
    throw std::runtime_error(path + ": cannot replace with " + temporary + ": " + why);
  }
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  sync_path(folder.empty() ? "." : folder.string(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

size_t remove_stale_temporaries(const std::string& folder) {
  std::error_code error;
  size_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(kTemporaryInfix);
    if (at == std::string::npos || !entry.is_regular_file(error)) continue;
    const std::string digits = name.substr(at + std::strlen(kTemporaryInfix));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    // A writer that still runs (another process sharing the folder) keeps its file.
    if (pid == ::getpid() || (::kill(pid_t(pid), 0) == 0 || errno != ESRCH)) continue;
    removed += std::filesystem::remove(entry.path(), error) ? 1 : 0;
  }
  return removed;
}

void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace udc::common
