// For fuzz targets whose reader takes a path: the input written to a file of this process
// in /dev/shm (or the temporary folder), rewritten for every input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace udc::fuzz {

inline std::string input_file(const uint8_t* data, size_t size, const std::string& extension) {
  static const std::string path =
      ((std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                  : std::filesystem::temp_directory_path()) /
       ("udc_fuzz_" + std::to_string(::getpid()) + extension))
          .string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

}  // namespace udc::fuzz
