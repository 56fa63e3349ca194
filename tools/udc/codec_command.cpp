#include "codec_command.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "udc/common/file_io.hpp"
#include "udc/common/weight_file.hpp"
#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/compression/size_estimate.hpp"
#include "udc/compression/synthetic_weights.hpp"

namespace udc::tool {
namespace {

namespace codec = udc::compression;
using common::has_extension;
using common::read_weights;
using common::write_weights;

/// Weights of the built-in example: one tensor per standard distribution.
constexpr size_t kDemoWeights = 65536;
constexpr uint64_t kDemoSeed = 2022;

/// A slice's coding in words: palette or direct, zero runs or not, Golomb-Rice divisors.
std::string describe_coding(const codec::SliceInfo& slice) {
  std::string weights =
      slice.uncompressed
          ? fmt::format("uncompressed {}b", slice.weight_divisor)
          : fmt::format("{}GR k={}", slice.truncated ? "trunc " : "", slice.weight_divisor);
  std::string zeros = slice.zero_runs ? fmt::format("runs k={}", slice.zero_run_divisor) : "inline";
  std::string palette = slice.palette_size > 0
                            ? fmt::format("{} x {}b", slice.palette_size, slice.palette_bits)
                            : std::string("direct");
  return fmt::format("{:<16} {:<10} {:<10} {:>6}", weights, zeros, palette, slice.direct_offset);
}

/// Size, bits per weight and ratio against int8 of a stream, then its slices.
void print_stream_report(const std::vector<int16_t>& weights, const std::vector<uint8_t>& stream,
                         const std::vector<codec::SliceInfo>& slices) {
  const double n = static_cast<double>(weights.size());
  size_t zeros = 0;
  for (int16_t w : weights) zeros += w == 0;
  fmt::print("weights          {}\n", weights.size());
  fmt::print("zeros            {} ({:.1f} %)\n", zeros, n > 0 ? 100.0 * zeros / n : 0.0);
  fmt::print("stream bytes     {}\n", stream.size());
  fmt::print("bits per weight  {:.3f}\n", n > 0 ? 8.0 * stream.size() / n : 0.0);
  fmt::print("ratio vs int8    {:.2f}x\n",
             stream.empty() ? 0.0 : n / static_cast<double>(stream.size()));
  fmt::print("slices           {}\n\n", slices.size());
  fmt::print("{:>5} {:>10} {:>8} {:>9} {:<16} {:<10} {:<10} {:>6} {:>9}\n", "slice", "bit",
             "weights", "zeros", "weight coding", "zeros", "palette", "dirofs", "bits");
  for (size_t i = 0; i < slices.size(); ++i) {
    const codec::SliceInfo& s = slices[i];
    fmt::print("{:>5} {:>10} {:>8} {:>9} {} {:>9}\n", i, s.bit_offset, s.weight_symbols,
               s.zeros_from_runs, describe_coding(s), s.bits);
  }
}

/// Weights a decode may produce unless --max-weights says otherwise: more than any layer
/// the NPU can run holds (a 64 Mi-weight stream decodes to 128 MiB here), and a bound on
/// what a small corrupt stream of long zero runs can make the host allocate.
constexpr uint64_t kDefaultMaxDecodedWeights = uint64_t{1} << 26;

/// Decodes a stream, turning the decoder's error (bit offset and field) into an exception
/// that names the file; `max_weights` bounds what a corrupt header can make it allocate.
codec::DecodeResult decode_or_throw(const std::string& path, const std::vector<uint8_t>& stream,
                                    uint64_t max_weights = kDefaultMaxDecodedWeights) {
  codec::DecodeOptions options;
  options.record_slices = true;
  options.max_weights = max_weights;
  codec::DecodeResult result = codec::decode_stream(stream.data(), stream.size(), options);
  if (!result.ok())
    throw std::runtime_error(path + ": corrupt weight stream at " + result.error->to_string());
  return result;
}

void run_encode(const std::string& input, const std::string& output) {
  const std::vector<int16_t> weights = read_weights(input);
  codec::WeightEncoder encoder;
  std::vector<uint8_t> stream;
  try {
    stream = encoder.encode(weights.data(), weights.size());
  } catch (const std::out_of_range& e) {
    throw std::runtime_error(input + ": " + e.what());
  }
  common::write_file_atomically(output, stream.data(), stream.size());
  fmt::print("{}: {} weights -> {} bytes ({:.3f} bits per weight)\n", output, weights.size(),
             stream.size(), weights.empty() ? 0.0 : 8.0 * stream.size() / weights.size());
}

void run_decode(const std::string& input, const std::string& output, uint64_t max_weights) {
  const std::vector<uint8_t> stream = common::read_file(input);
  const codec::DecodeResult result = decode_or_throw(input, stream, max_weights);
  write_weights(output, result.weights);
  fmt::print("{}: {} bytes -> {} weights\n", output, stream.size(), result.weights.size());
}

void run_stats(const std::string& input) {
  if (has_extension(input, ".mlw")) {
    const std::vector<uint8_t> stream = common::read_file(input);
    const codec::DecodeResult result = decode_or_throw(input, stream);
    fmt::print("stream           {}\n", input);
    print_stream_report(result.weights, stream, result.slices);
    return;
  }
  const std::vector<int16_t> weights = read_weights(input);
  std::vector<uint8_t> stream;
  try {
    stream = codec::encode_weights(weights.data(), weights.size());
  } catch (const std::out_of_range& e) {
    throw std::runtime_error(input + ": " + e.what());
  }
  const codec::DecodeResult result = decode_or_throw("encoded " + input, stream);
  fmt::print("weights file     {}\n", input);
  print_stream_report(weights, stream, result.slices);
}

/// Built-in tensors (dense, sparse, low-bit) encoded, decoded and compared: a smoke test a
/// user can run without files.
void run_demo() {
  fmt::print("udc codec demo: {} synthetic int8 weights per distribution, seed {}\n\n",
             kDemoWeights, kDemoSeed);
  fmt::print("{:<12} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>10}\n", "weights", "zeros%", "bytes",
             "bits/w", "ratio", "estimate", "slices", "roundtrip");
  codec::WeightEncoder encoder;
  for (const std::string& name : codec::standard_distributions()) {
    const std::vector<int8_t> weights = codec::synthetic_weights(name, kDemoWeights, kDemoSeed);
    const std::vector<uint8_t> stream = encoder.encode(weights.data(), weights.size());
    const codec::DecodeResult decoded = codec::decode_stream(stream.data(), stream.size());
    const bool same = decoded.ok() && decoded.weights.size() == weights.size() &&
                      std::equal(weights.begin(), weights.end(), decoded.weights.begin());
    const codec::SizeEstimate estimate =
        codec::estimate_stream_size(codec::WeightHistogram::of(weights.data(), weights.size()));
    size_t zeros = 0;
    for (int8_t w : weights) zeros += w == 0;
    fmt::print("{:<12} {:>7.1f} {:>8} {:>9.3f} {:>8.2f}x {:>9} {:>7} {:>10}\n", name,
               100.0 * zeros / weights.size(), stream.size(), 8.0 * stream.size() / weights.size(),
               static_cast<double>(weights.size()) / stream.size(), estimate.stream_bytes,
               encoder.plan(weights.data(), weights.size()).sections.front().slices.size(),
               same ? "ok" : "FAILED");
    if (!same) throw std::runtime_error("demo: round trip failed for " + name);
  }
  fmt::print("\nbytes: exact stream size (16-byte aligned); estimate: histogram-only estimate\n");
}

}  // namespace

void add_codec_command(CLI::App& app) {
  CLI::App* codec = app.add_subcommand("codec", "Ethos-U weight stream codec");
  codec->require_subcommand(1);

  auto* encode =
      codec->add_subcommand("encode", "encode int8 weights (raw file or .npy) to a stream");
  static std::string encode_in, encode_out;
  encode->add_option("input", encode_in, "weights: raw int8 file, or .npy of int8/int16")
      ->required();
  encode->add_option("output", encode_out, "weight stream to write")->required();
  encode->callback([] { run_encode(encode_in, encode_out); });

  auto* decode = codec->add_subcommand("decode", "decode a stream to weights (raw int8, or .npy)");
  static std::string decode_in, decode_out;
  static uint64_t decode_max = kDefaultMaxDecodedWeights;
  decode->add_option("input", decode_in, "weight stream")->required();
  decode->add_option("output", decode_out, "weights to write: .npy, else raw int8")->required();
  decode
      ->add_option("--max-weights", decode_max,
                   "stop with an error when the stream holds more weights than this")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32))
      ->capture_default_str();
  decode->callback([] { run_decode(decode_in, decode_out, decode_max); });

  auto* stats = codec->add_subcommand(
      "stats",
      "size, bits per weight, ratio and per-slice modes of a stream (.mlw) or of the "
      "stream our encoder makes for a weights file");
  static std::string stats_in;
  stats->add_option("input", stats_in, ".mlw stream, or weights (raw int8 / .npy)")->required();
  stats->callback([] { run_stats(stats_in); });

  auto* demo =
      codec->add_subcommand("demo", "encode the built-in example tensors and report sizes");
  demo->callback([] { run_demo(); });
}

}  // namespace udc::tool
