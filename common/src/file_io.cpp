#include "udc/common/file_io.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

void write_file_atomically(const std::string& path, const uint8_t* data, size_t size) {
  // The process id keeps concurrent writers (parallel sweeps) off each other's temporary.
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw std::runtime_error(temporary + ": cannot open for writing: " + std::strerror(errno));
    }
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) {
      std::remove(temporary.c_str());
      throw std::runtime_error(temporary + ": write error (disk full?)");
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    throw std::runtime_error(path + ": cannot replace with " + temporary + ": " + reason);
  }
}

void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace udc::common
