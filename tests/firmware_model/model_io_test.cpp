// The .udcm format: lossless round trips, and a clear error naming the offset for every
// truncation, corruption and semantic problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "udc/common/file_io.hpp"
#include "udc/firmware_model/model_generator.hpp"
#include "udc/firmware_model/model_io.hpp"

namespace udc::firmware_model {
namespace {

void expect_same_model(const Model& a, const Model& b) {
  ASSERT_EQ(a.name, b.name);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    EXPECT_EQ(a.tensors[t].name, b.tensors[t].name);
    EXPECT_EQ(a.tensors[t].shape, b.tensors[t].shape);
    EXPECT_EQ(a.tensors[t].scale, b.tensors[t].scale);
    EXPECT_EQ(a.tensors[t].zero_point, b.tensors[t].zero_point);
  }
  ASSERT_EQ(a.operations.size(), b.operations.size());
  for (size_t i = 0; i < a.operations.size(); ++i) {
    const Operation &x = a.operations[i], &y = b.operations[i];
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.output, y.output);
    EXPECT_EQ(x.kernel_h, y.kernel_h);
    EXPECT_EQ(x.stride_w, y.stride_w);
    EXPECT_EQ(x.padding, y.padding);
    EXPECT_EQ(x.block_size, y.block_size);
    EXPECT_EQ(x.activation, y.activation);
    EXPECT_EQ(x.activation_min, y.activation_min);
    EXPECT_EQ(x.activation_max, y.activation_max);
    EXPECT_EQ(x.weights, y.weights);
    EXPECT_EQ(x.weight_bits, y.weight_bits);
    EXPECT_EQ(x.bias, y.bias);
    EXPECT_EQ(x.multiplier, y.multiplier);
    EXPECT_EQ(x.shift, y.shift);
    EXPECT_EQ(x.add.input2_multiplier, y.add.input2_multiplier);
    EXPECT_EQ(x.add.output_shift, y.add.output_shift);
  }
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    deserialize_model(bytes.data(), bytes.size(), "m.udcm");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return {};
}

TEST(ModelIo, RoundTripsRandomModelsAndMobileNet) {
  std::mt19937 rng(11);
  std::vector<Model> models{mobilenet_like()};
  for (int i = 0; i < 30; ++i) models.push_back(random_model(rng));
  for (const Model& model : models) {
    const std::vector<uint8_t> bytes = serialize_model(model);
    const Model back = deserialize_model(bytes.data(), bytes.size(), "memory");
    expect_same_model(model, back);
    EXPECT_EQ(serialize_model(back), bytes);
  }
}

TEST(ModelIo, HeaderLayoutAndChecksum) {
  const std::vector<uint8_t> bytes = serialize_model(mobilenet_like());
  ASSERT_GT(bytes.size(), kModelHeaderBytes);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "UDCM");
  EXPECT_EQ(bytes[4] | bytes[5] << 8, kModelVersion);
  uint64_t payload = 0;
  for (int i = 0; i < 8; ++i) payload |= uint64_t{bytes[size_t(8 + i)]} << (8 * i);
  EXPECT_EQ(payload, bytes.size() - kModelHeaderBytes);
  const uint32_t stored = uint32_t(bytes[16]) | uint32_t(bytes[17]) << 8 |
                          uint32_t(bytes[18]) << 16 | uint32_t(bytes[19]) << 24;
  EXPECT_EQ(stored, crc32(bytes.data() + kModelHeaderBytes, bytes.size() - kModelHeaderBytes));
  // The standard CRC-32 check value.
  const std::string check = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
}

TEST(ModelIo, EveryTruncationIsRejectedWithItsOffset) {
  std::mt19937 rng(4);
  const std::vector<uint8_t> bytes = serialize_model(random_model(rng));
  for (size_t size = 0; size < bytes.size(); ++size) {
    const std::string error =
        error_of(std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(size)));
    EXPECT_NE(error.find("m.udcm: offset "), std::string::npos) << size << ": " << error;
    EXPECT_TRUE(error.find("truncated") != std::string::npos) << size << ": " << error;
  }
}

TEST(ModelIo, CorruptBytesFailTheChecksum) {
  std::mt19937 rng(5);
  const std::vector<uint8_t> bytes = serialize_model(random_model(rng));
  for (size_t at = kModelHeaderBytes; at < bytes.size(); at += 7) {
    std::vector<uint8_t> corrupt = bytes;
    corrupt[at] ^= uint8_t(1 + rng() % 255);
    EXPECT_NE(error_of(corrupt).find("checksum mismatch"), std::string::npos) << at;
  }
  std::vector<uint8_t> magic = bytes;
  magic[0] = 'X';
  EXPECT_NE(error_of(magic).find("not a .udcm model"), std::string::npos);
  std::vector<uint8_t> version = bytes;
  version[4] = 9;
  EXPECT_NE(error_of(version).find("unsupported version 9"), std::string::npos);
}

/// Re-seals a payload after an edit, so that the parser and validator are reached.
std::vector<uint8_t> reseal(std::vector<uint8_t> bytes) {
  const uint32_t crc = crc32(bytes.data() + kModelHeaderBytes, bytes.size() - kModelHeaderBytes);
  for (int i = 0; i < 4; ++i) bytes[size_t(16 + i)] = uint8_t(crc >> (8 * i));
  return bytes;
}

TEST(ModelIo, SemanticErrorsNameTheTensorOrOperation) {
  ModelBuilder b("tiny");
  const int32_t x = b.add_input("in", Shape{4, 4, 2}, 0.1f, 0);
  ModelBuilder::Requant r{{0, 0, 0}, {1 << 30, 1 << 30, 1 << 30}, {-2, -2, -2}};
  const int32_t y = b.conv2d("conv", x, 3, 3, 1, Padding::Same, std::vector<int8_t>(54, 1), 2, r,
                             {0.1f, 0}, Activation::Relu);
  b.mark_output(y);
  const std::vector<uint8_t> bytes = serialize_model(b.finish());
  // Layout: header, name "tiny" (4 + 4), tensor count (4), tensor "in" (4 + 2), shape (12),
  // scale (4), zero point (4).
  const size_t zero_point = kModelHeaderBytes + 8 + 4 + 6 + 12 + 4;
  std::vector<uint8_t> bad_zero_point = bytes;
  bad_zero_point[zero_point] = 200;
  EXPECT_NE(error_of(reseal(bad_zero_point)).find("tensor 0 (in): zero point 200"),
            std::string::npos);
  // A shape of 2^22 x 2^22 x 2^20 whose 64-bit element count wraps to 0 (checksum resealed).
  const size_t shape = kModelHeaderBytes + 8 + 4 + 6;
  std::vector<uint8_t> wrapped_shape = bytes;
  for (int d = 0; d < 3; ++d) {
    const uint32_t value = d < 2 ? (1u << 22) : (1u << 20);
    for (int k = 0; k < 4; ++k) wrapped_shape[shape + 4 * d + k] = uint8_t(value >> (8 * k));
  }
  EXPECT_NE(error_of(reseal(wrapped_shape)).find("tensor 0 (in): shape 4194304x4194304x1048576"),
            std::string::npos)
      << error_of(reseal(wrapped_shape));
  // A weight of 2 is outside +-1 for 2-bit weights.
  std::vector<uint8_t> bad_weight = bytes;
  const uint8_t weight_count_then_first[] = {54, 0, 0, 0, 1};
  const auto first_weight =
      std::search(bad_weight.begin(), bad_weight.end(), std::begin(weight_count_then_first),
                  std::end(weight_count_then_first));
  ASSERT_NE(first_weight, bad_weight.end());
  *(first_weight + 4) = 2;
  EXPECT_NE(error_of(reseal(bad_weight)).find("operation 0 (conv): weight 0 is 2, outside +-1"),
            std::string::npos)
      << error_of(reseal(bad_weight));
  // Extra bytes after the model.
  std::vector<uint8_t> extended = bytes;
  extended.push_back(0);
  extended[8] = uint8_t(extended[8] + 1);
  EXPECT_NE(error_of(reseal(extended)).find("1 unexpected bytes after the model"),
            std::string::npos);
}

TEST(ModelIo, LayersWhoseAccumulatorCanOverflowInt32AreRefused) {
  // n inputs of |x - zero point| up to 255 times weights of 127: 70,000 of them reach
  // 2.27e9 > 2^31 - 1, 66,311 stay below. The file is written with weights of 1 (a valid
  // model) and its weights set to 127 afterwards, checksum resealed.
  auto file_with = [](uint32_t inputs, int32_t zero_point) {
    ModelBuilder b("wide");
    const int32_t x = b.add_input("in", Shape{1, 1, inputs}, 0.1f, zero_point);
    ModelBuilder::Requant r{{0}, {1 << 30}, {-20}};
    const int32_t y = b.fully_connected("fc", x, 1, std::vector<int8_t>(inputs, 1), 8, r, {0.1f, 0},
                                        Activation::None);
    b.mark_output(y);
    std::vector<uint8_t> bytes = serialize_model(b.finish());
    const uint8_t count_then_first[] = {uint8_t(inputs), uint8_t(inputs >> 8),
                                        uint8_t(inputs >> 16), uint8_t(inputs >> 24), 1};
    auto first = std::search(bytes.begin(), bytes.end(), std::begin(count_then_first),
                             std::end(count_then_first));
    EXPECT_NE(first, bytes.end());
    std::fill(first + 4, first + 4 + inputs, uint8_t(127));
    return reseal(bytes);
  };
  const std::string wide = error_of(file_with(70000, -128));
  EXPECT_NE(wide.find("operation 0 (fc): channel 0: worst-case accumulator 8890000 x 255"),
            std::string::npos)
      << wide;
  EXPECT_NE(wide.find("m.udcm"), std::string::npos) << wide;
  EXPECT_EQ(error_of(file_with(66311, -128)), "");
  // The span follows the zero point: |x - 0| <= 128 lets twice as many weights fit.
  EXPECT_EQ(error_of(file_with(70000, 0)), "");
}

TEST(ModelIo, WritesAtomicallyAndReportsMissingFiles) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("udcm_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const Model model = mobilenet_like();
  const std::string path = (dir / "m.udcm").string();
  write_model(model, path);
  expect_same_model(model, read_model(path));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);  // no temporary
  EXPECT_THROW(write_model(model, (dir / "missing" / "m.udcm").string()), std::runtime_error);
  try {
    read_model((dir / "absent.udcm").string());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.udcm: cannot open"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace udc::firmware_model
