// Whole-file reads and crash-safe writes, shared by every component that writes files.
// Errors throw std::runtime_error naming the file and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace udc::common {

std::vector<uint8_t> read_file(const std::string& path);

/// Writes to a temporary file beside `path` and renames it over `path`, so a failed or
/// interrupted write never leaves a half-written file.
void write_file_atomically(const std::string& path, const uint8_t* data, size_t size);
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace udc::common
