// Reading and writing weight tensors and byte files (the udc tool, calibration data): raw int8
// files and NumPy .npy arrays (int8 or int16, C order). Errors throw
// std::runtime_error naming the file and what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace udc::common {

/// Weights from a .npy file (dtype int8 or int16) or, for any other extension,
/// from a raw file of int8 values.
std::vector<int16_t> read_weights(const std::string& path);

/// The weights of a .npy file's bytes (int8 or int16, C order); errors name `path`.
std::vector<int16_t> parse_npy(const std::string& path, const std::vector<uint8_t>& bytes);

/// Writes weights as .npy (int8 when every value fits, else int16) or, for any
/// other extension, as raw int8 (fails naming the first value that does not fit).
void write_weights(const std::string& path, const std::vector<int16_t>& weights);

bool has_extension(const std::string& path, const std::string& extension);

}  // namespace udc::common
