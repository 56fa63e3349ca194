// The .udcm file: a versioned, checksummed binary form of Model (layout in
// firmware_model/FORMAT.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "udc/firmware_model/model.hpp"

namespace udc::firmware_model {

constexpr char kModelMagic[4] = {'U', 'D', 'C', 'M'};
constexpr uint16_t kModelVersion = 1;
constexpr size_t kModelHeaderBytes = 24;

/// Serialises a valid model (throws std::invalid_argument naming the problem if not).
std::vector<uint8_t> serialize_model(const Model& model);
/// Parses and validates. `origin` names the source in errors, which give the byte offset
/// and what was expected: "origin: offset N: ...". Throws std::runtime_error.
Model deserialize_model(const uint8_t* data, size_t size, const std::string& origin);

/// Writes through a temporary file and a rename, so a reader never sees half a model.
void write_model(const Model& model, const std::string& path);
Model read_model(const std::string& path);

/// CRC-32 (IEEE 802.3, reflected, as zlib's crc32).
uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace udc::firmware_model
