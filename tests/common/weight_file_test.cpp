// .npy and raw weight files: round trips, and headers that would overflow or lie.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "udc/common/file_io.hpp"
#include "udc/common/weight_file.hpp"

namespace udc::common {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed())))
      .string();
}

/// A version-1 .npy file with `header` (padded to 64 bytes) and `data`.
std::string write_npy(const std::string& name, std::string header, const std::string& data) {
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes = std::string("\x93NUMPY", 6) + char(1) + char(0) + char(header.size() & 0xFF) +
                      char(header.size() >> 8) + header + data;
  const std::string path = temp_path(name) + ".npy";
  write_file_atomically(path, bytes);
  return path;
}

std::string error_of(const std::string& path) {
  try {
    read_weights(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(WeightFile, NpyRoundTripsInt8AndInt16) {
  for (const std::vector<int16_t>& weights :
       {std::vector<int16_t>{-128, 0, 5, 127}, std::vector<int16_t>{-255, 300, 0}}) {
    const std::string path = temp_path("roundtrip") + ".npy";
    write_weights(path, weights);
    EXPECT_EQ(read_weights(path), weights);
    std::filesystem::remove(path);
  }
}

TEST(WeightFile, ShapesThatOverflowOrLieAreRejectedNamingTheFile) {
  // 2^32 x 2^32 elements wrap a 64-bit count to 0, which an empty payload would match.
  const std::string wrapped = write_npy(
      "wrapped", "{'descr': '|i1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
      "");
  EXPECT_NE(error_of(wrapped).find("holds more elements than the file"), std::string::npos)
      << error_of(wrapped);
  EXPECT_NE(error_of(wrapped).find(wrapped), std::string::npos);
  const std::string garbage =
      write_npy("garbage", "{'descr': '|i1', 'fortran_order': False, 'shape': (3, x), }", "abc");
  EXPECT_NE(error_of(garbage).find("is not a dimension"), std::string::npos) << error_of(garbage);
  const std::string short_data =
      write_npy("short", "{'descr': '|i1', 'fortran_order': False, 'shape': (4,), }", "abc");
  EXPECT_NE(error_of(short_data).find("needs 4 data bytes"), std::string::npos)
      << error_of(short_data);
  for (const std::string& path : {wrapped, garbage, short_data}) std::filesystem::remove(path);
}

}  // namespace
}  // namespace udc::common
