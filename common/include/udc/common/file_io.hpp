// Whole-file reads and crash-safe writes, shared by every component that writes files.
// Errors throw std::runtime_error naming the file and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace udc::common {

std::vector<uint8_t> read_file(const std::string& path);

/// Writes to a temporary file beside `path` (`path`.tmp.<process id>), flushes it to the
/// disk and renames it over `path`, then flushes the folder: a failed, interrupted or
/// killed write never leaves a half-written file under `path`.

void write_file_atomically(const std::string& path, const uint8_t* data, size_t size);
void write_file_atomically(const std::string& path, const std::string& text);

/// Removes the temporaries that killed writers left in `folder` (those of processes that
/// no longer run); a resumed run calls it on its output folder. Returns how many.
size_t remove_stale_temporaries(const std::string& folder);

}  // namespace udc::common
