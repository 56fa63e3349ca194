// NPU configuration files: every shipped file loads with the public figures, files
// compose, and bad input is rejected naming file, key and reason.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "udc/npu_sim/area.hpp"
#include "udc/npu_sim/command_stream.hpp"
#include "udc/npu_sim/config.hpp"
#include "udc/npu_sim/hardware_space.hpp"

namespace udc::npu_sim::test {
namespace {

const std::string kNpuDir = std::string(UDC_CONFIG_DIR) + "/npu/";

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("udc_config_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string load_error(const std::string& text) {
  const std::string path = write_temp("bad.yaml", text);
  try {
    load_npu_config(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(NpuConfig, ShippedNpuFilesCarryThePublicFigures) {
  struct Expect {
    const char* file;
    uint32_t macs, cores, h, w, c;
    uint64_t shram;
  };
  for (const Expect& e : {Expect{"ethos-u55-32", 32, 1, 1, 1, 4, 16384},
                          Expect{"ethos-u55-64", 64, 1, 1, 1, 8, 16384},
                          Expect{"ethos-u55-128", 128, 1, 2, 1, 8, 24576},
                          Expect{"ethos-u55-256", 256, 1, 2, 2, 8, 49152},
                          Expect{"ethos-u65-256", 256, 1, 2, 2, 8, 49152},
                          Expect{"ethos-u65-512", 256, 2, 2, 2, 8, 49152}}) {
    const NpuConfig c = load_npu_config(kNpuDir + e.file + ".yaml");
    EXPECT_EQ(c.npu_name, e.file);
    EXPECT_EQ(c.macs_per_cycle, e.macs);
    EXPECT_EQ(c.cores, e.cores);
    EXPECT_EQ(c.micro_block.h, e.h);
    EXPECT_EQ(c.micro_block.w, e.w);
    EXPECT_EQ(c.micro_block.c, e.c);
    EXPECT_EQ(c.shared_buffer_bytes, e.shram);
  }
}

TEST(NpuConfig, SystemsComposeWithNpuFiles) {
  // One file naming both equals an NPU file then a system file.
  const NpuConfig combined = load_npu_config(kNpuDir + "u65-512-mid-end.yaml");
  const NpuConfig pair =
      load_npu_config({kNpuDir + "ethos-u65-512.yaml", kNpuDir + "systems/u65-mid-end.yaml"});
  for (const common::Param<NpuConfig>& p : npu_params()) {
    if (p.type != common::ParamType::Text) {
      EXPECT_EQ(p.text(combined), p.text(pair)) << p.key;
    }
  }
  EXPECT_EQ(config_fingerprint(combined), config_fingerprint(pair));
  // U65 mid-end: 128-bit AXI, DRAM at 0.46875 of a 500 MHz clock.
  EXPECT_EQ(combined.core_clock_hz, 500e6);
  EXPECT_EQ(combined.sram.bytes_per_cycle, 16);
  EXPECT_EQ(combined.offchip.bytes_per_cycle, 16 * 0.46875);
  EXPECT_EQ(combined.offchip.read_latency_cycles, 500u);
  EXPECT_EQ(combined.offchip.write_latency_cycles, 250u);
  // U55 deep embedded: 200 MHz, flash at 1/16 of the 64-bit AXI.
  const NpuConfig deep = load_npu_config(kNpuDir + "u55-128-deep-embedded.yaml");
  EXPECT_EQ(deep.core_clock_hz, 200e6);
  EXPECT_EQ(deep.offchip.bytes_per_cycle, 8 * 0.0625);
  EXPECT_EQ(deep.sram.bytes_per_cycle * deep.core_clock_hz, 1.6e9);
  EXPECT_EQ(deep.offchip.bytes_per_cycle * deep.core_clock_hz, 0.1e9);
}

TEST(NpuConfig, EveryParameterIsDeclaredWithUnitAndHelp) {
  const NpuConfig defaults;
  for (const common::Param<NpuConfig>& p : npu_params()) {
    EXPECT_FALSE(p.help.empty()) << p.key;
    EXPECT_FALSE(p.text(defaults).empty()) << p.key;
    // Its own text reads back to the same value (what written configs and sweeps rely on).
    NpuConfig copy;
    EXPECT_EQ(p.set(copy, p.text(defaults)), "") << p.key;
    EXPECT_EQ(p.text(copy), p.text(defaults)) << p.key;
    if (p.number) {
      EXPECT_FALSE(p.unit.empty()) << p.key;
      EXPECT_LE(p.min, p.max) << p.key;
      const double value = p.number(defaults);
      EXPECT_GE(value, p.min) << p.key << ": default out of its own range";
      EXPECT_LE(value, p.max) << p.key;
    }
  }
  EXPECT_EQ(check_consistency(NpuConfig{}), "");
}

// Every parameter that changes the NPU changes the fingerprint; the names do not.
TEST(NpuConfig, FingerprintCoversEveryNonNameParameter) {
  const NpuConfig base;
  for (const common::Param<NpuConfig>& p : npu_params()) {
    NpuConfig changed = base;
    std::string other;
    if (p.type == common::ParamType::Choice) {
      other = p.choices.back() == p.text(base) ? p.choices.front() : p.choices.back();
    } else if (p.type == common::ParamType::Text) {
      other = "renamed";
    } else {
      other = common::param_number_text(p.number(base) == p.max ? p.min : p.max);
    }
    ASSERT_EQ(p.set(changed, other), "") << p.key << "=" << other;
    if (p.type == common::ParamType::Text) {
      EXPECT_EQ(config_fingerprint(changed), config_fingerprint(base)) << p.key;
    } else {
      EXPECT_NE(config_fingerprint(changed), config_fingerprint(base)) << p.key;
    }
  }
}

TEST(NpuConfig, BadInputNamesFileKeyAndReason) {
  auto expect = [](const std::string& text, std::initializer_list<const char*> parts) {
    const std::string error = load_error(text);
    for (const char* part : parts) {
      EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' missing in: " << error;
    }
  };
  expect("npu:\n  macs_per_cyle: 64\n",
         {"bad.yaml:2", "npu.macs_per_cyle", "unknown key (expected one of:", "macs_per_cycle"});
  expect("npu:\n  macs_per_cycle: many\n",
         {"bad.yaml:2: npu.macs_per_cycle: expected an integer 8..4096, got 'many'"});
  expect("npu:\n  macs_per_cycle: 12.5\n", {"npu.macs_per_cycle: expected an integer"});
  expect("npu:\n  macs_per_cycle: 1\n", {"npu.macs_per_cycle: expected an integer 8..4096"});
  expect("system:\n  offchip: {bytes_per_cycle: -1}\n",
         {"system.offchip.bytes_per_cycle: expected a number 0.0009765625..1024, got '-1'"});
  expect("system:\n  memory_mode: rom\n",
         {"system.memory_mode", "'rom' is not one of: shared_sram, dedicated_sram, sram_only"});
  expect("npu:\n  name: ''\n", {"npu.name: expected a non-empty name"});
  expect("npu:\n  micro_block: 4\n", {"npu.micro_block: expected a map of keys"});
  expect("npu:\n  macs_per_cycle: 32\n  micro_block: {h: 2, w: 2, c: 16}\n",
         {"inconsistent", "micro_block", "macs_per_cycle"});
  expect("npu: [1, 2\n", {"bad.yaml", "malformed YAML"});
  expect("gpu: {}\n", {"bad.yaml:1: gpu: unknown key (expected one of: npu, overrides, system)"});
  expect("npu: missing.yaml\n", {"missing.yaml", "no such configuration file"});
  // Found by fuzzing: a file naming a folder ("." is the config's own) made yaml-cpp leak
  // the buffer of the stream it could not read.
  expect("npu: .\n", {"not a configuration file (a folder or a device)"});
  expect("overrides:\n  npu.cores: 9\n",
         {"bad.yaml:2: overrides.npu.cores: expected an integer 1..4, got '9'"});
  expect("overrides:\n  npu.core: 2\n", {"bad.yaml:2: overrides.npu.core: unknown parameter"});
}

TEST(NpuConfig, OverridesApplyAndAreChecked) {
  NpuConfig c = load_npu_config(kNpuDir + "u55-128-deep-embedded.yaml");
  apply_overrides(c, {"npu.weight_decoders=4", "system.offchip.bytes_per_cycle=2"}, "--set");
  EXPECT_EQ(c.weight_decoders, 4u);
  EXPECT_EQ(c.offchip.bytes_per_cycle, 2);
  EXPECT_THROW(apply_overrides(c, {"npu.weight_decoders"}, "--set"), std::runtime_error);
  EXPECT_THROW(apply_overrides(c, {"npu.nothing=1"}, "--set"), std::runtime_error);
}

TEST(CommandStreamFile, RoundTripsThroughJson) {
  CommandStream s;
  s.images.push_back({MemoryId::Offchip, 16, std::vector<uint8_t>(5000, 7)});  // goes to a file
  s.images.push_back({MemoryId::Sram, 0, {1, 2, 255}});
  Command dma;
  dma.kind = CommandKind::Dma;
  dma.dma_bytes = 100;
  dma.dma_dst_address = 64;
  s.commands.push_back(dma);
  Command conv;
  conv.kind = CommandKind::Conv2d;
  conv.ifm.shape = {5, 5, 3};
  conv.ifm.row_stride = 40;
  conv.ofm.shape = {3, 3, 20};
  conv.ofm.address = 1000;
  conv.kernel_h = conv.kernel_w = 3;
  conv.pad_top = conv.pad_left = 1;
  conv.pad_bottom = conv.pad_right = 1;
  conv.stride_h = conv.stride_w = 2;
  conv.input_zero_point = -5;
  conv.activation_min = 0;
  conv.ofm_block_depth = 8;
  conv.weight_streams = {{0, 32}, {32, 48}, {80, 16}};
  conv.scale_address = 96;
  s.commands.push_back(conv);
  s.outputs.push_back({"out", MemoryId::Sram, 1000, 180});
  const std::string path = write_temp("stream.json", "");
  write_command_stream(s, path);
  const CommandStream back = read_command_stream(path);
  ASSERT_EQ(back.images.size(), 2u);
  EXPECT_EQ(back.images[0].bytes, s.images[0].bytes);
  EXPECT_EQ(back.images[1].bytes, s.images[1].bytes);
  ASSERT_EQ(back.commands.size(), 2u);
  const Command& c = back.commands[1];
  EXPECT_EQ(c.kind, CommandKind::Conv2d);
  EXPECT_EQ(c.ifm.shape, conv.ifm.shape);
  EXPECT_EQ(c.ifm.row_stride, 40u);
  EXPECT_EQ(c.pad_bottom, 1u);
  EXPECT_EQ(c.stride_w, 2u);
  EXPECT_EQ(c.input_zero_point, -5);
  EXPECT_EQ(c.activation_min, 0);
  EXPECT_EQ(c.weight_streams.size(), 3u);
  EXPECT_EQ(c.weight_streams[1].bytes, 48u);
  EXPECT_EQ(c.scale_address, 96u);
  EXPECT_EQ(back.commands[0].dma_bytes, 100u);
  EXPECT_EQ(back.outputs[0].name, "out");
}

TEST(CommandStreamFile, BadStreamsNameCommandAndKey) {
  auto error_of = [](const std::string& text) -> std::string {
    const std::string path = write_temp("bad.json", text);
    try {
      read_command_stream(path);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string head = R"({"format": "udc-command-stream", "version": 1, "commands": [)";
  EXPECT_NE(error_of(head + R"({"op": "fft"}]})").find("command 0: op: unknown operation"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"({"op": "dma", "src": {"memory": "sram", "address": 0}}]})")
                .find("command 0 (dma): dst: missing"),
            std::string::npos);
  const std::string conv =
      R"({"op": "conv2d", "ifm": {"memory": "sram", "address": 0, "shape": [4, 4, 3]},
          "ofm": {"memory": "sram", "address": 64, "shape": [4, 4, 20]}, "kernel": [1, 1],
          "ofm_block_depth": 8, "weights": {"memory": "offchip", "streams": [[0, 16]]}, "scales": 0}]})";
  EXPECT_NE(error_of(head + conv).find("command 0 (conv2d): has 1 weight streams, expected 3"),
            std::string::npos)
      << error_of(head + conv);
  EXPECT_NE(error_of(R"({"format": "udc-command-stream", "version": 1, "commands": [)")
                .find("malformed JSON"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"format": "udc-command-stream", "version": 2, "commands": []})").find("version"),
      std::string::npos);
}

TEST(AreaModel, StockConfigurationsPricedPartByPart) {
  // Each part by hand from the defaults' sources: a MAC (282 + 137) um^2 x (16/45)^2, a KiB
  // of SRAM 8192 x 0.07 um^2 / 0.7, the rest the declared assumptions.
  const double mac = (282.0 + 137.0) * (16.0 / 45.0) * (16.0 / 45.0);
  const double sram_kib = 8192 * 0.07 / 0.7;
  EXPECT_NEAR(AreaModel{}.mac_um2, mac, 0.1);
  EXPECT_NEAR(AreaModel{}.sram_um2_per_kib, sram_kib, 0.5);
  struct Expect {
    const char* file;
    double macs, shared_kib, cores;
  };
  const AreaModel model;
  for (const Expect& e :
       {Expect{"ethos-u55-32.yaml", 32, 16, 1}, Expect{"ethos-u55-64.yaml", 64, 16, 1},
        Expect{"ethos-u55-128.yaml", 128, 24, 1}, Expect{"ethos-u55-256.yaml", 256, 48, 1},
        Expect{"ethos-u65-512.yaml", 256, 48, 2}}) {
    SCOPED_TRACE(e.file);
    const NpuConfig config = load_npu_config(
        std::vector<std::string>{kNpuDir + e.file, kNpuDir + "systems/u55-deep-embedded.yaml"});
    const AreaBreakdown area = area_of(config, model);
    EXPECT_NEAR(area.macs, e.cores * e.macs * model.mac_um2 * 1e-6, 1e-12);
    EXPECT_NEAR(area.shared_buffer, e.cores * e.shared_kib * model.shared_buffer_um2_per_kib * 1e-6,
                1e-12);
    EXPECT_NEAR(area.decoders, e.cores * model.decoder_um2 * 1e-6, 1e-12);
    EXPECT_NEAR(area.fixed, e.cores * model.fixed_um2 * 1e-6, 1e-12);
    EXPECT_NEAR(area.sram, 4096 * model.sram_um2_per_kib * 1e-6, 1e-12);  // 4 MiB system SRAM
    EXPECT_DOUBLE_EQ(area.total(), area.npu() + area.sram);
  }
  // The Ethos-U55-128 without its SRAM: 0.0068 + 0.0393 + 0.005 + 0.05 mm^2.
  const NpuConfig u55 = load_npu_config(kNpuDir + "ethos-u55-128.yaml");
  EXPECT_NEAR(area_of(u55, model).npu(), 0.101096, 1e-5);
}

TEST(AreaModel, SectionReadsDeclaredKeysAndNamesBadOnes) {
  const std::string path =
      write_temp("area.yaml", "area:\n  mac_um2: 100\n  decoder_um2: 0\n  technology: 7nm\n");
  common::YamlSection root(path, common::load_yaml_file(path), "");
  common::YamlSection section = root.section("area");
  const AreaModel model = read_area_model(section);
  EXPECT_EQ(model.mac_um2, 100);
  EXPECT_EQ(model.decoder_um2, 0);
  EXPECT_EQ(model.technology, "7nm");
  EXPECT_EQ(model.fixed_um2, AreaModel{}.fixed_um2);
  NpuConfig config;
  config.macs_per_cycle = 64;
  config.weight_decoders = 3;
  EXPECT_NEAR(area_of(config, model).macs, 64 * 100e-6, 1e-12);
  EXPECT_EQ(area_of(config, model).decoders, 0);

  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {"area:\n  mac_area: 1\n", "mac_area"},
           {"area:\n  mac_um2: -1\n", "mac_um2"},
           {"area:\n  sram_um2_per_kib: x\n", "sram_um2_per_kib"}}) {
    const std::string bad = write_temp("bad_area.yaml", text);
    common::YamlSection bad_root(bad, common::load_yaml_file(bad), "");
    common::YamlSection bad_section = bad_root.section("area");
    try {
      read_area_model(bad_section);
      ADD_FAILURE() << text << " was accepted";
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

/// The hardware space in `text` (a file in kNpuDir's parent, so that `file:` options name
/// the shipped NPU files as a search config would).
npu_sim::HardwareSpace read_space(const std::string& text, size_t max_candidates = 4096) {
  const std::string path = write_temp("space.yaml", text);
  common::YamlSection root(path, common::load_yaml_file(path), "");
  common::YamlSection section = root.section("hardware");
  npu_sim::HardwareSpace space = read_hardware_space(section, max_candidates);
  root.finish();
  return space;
}

TEST(HardwareSpace, CandidatesApplyOneOptionOfEveryChoiceInOrder) {
  const HardwareSpace space = read_space(
      "hardware:\n"
      "  mac_array:\n"
      "    - {file: " +
      kNpuDir +
      "ethos-u55-64.yaml}\n"
      "    - {file: " +
      kNpuDir +
      "ethos-u55-256.yaml, npu.weight_decoders: 2}\n"
      "  npu.shared_buffer_bytes: [16384, 32768, 65536]\n");
  ASSERT_EQ(space.choices.size(), 2u);
  ASSERT_EQ(space.size(), 6u);
  EXPECT_EQ(space.choices[0].options[1].label, "ethos-u55-256 npu.weight_decoders=2");
  for (size_t i = 0; i < space.size(); ++i) {
    EXPECT_EQ(space.index_of(space.options_of(i)), i);
  }
  EXPECT_EQ(space.options_of(4), (std::vector<size_t>{1, 1}));  // the last choice fastest
  const NpuConfig base = load_npu_config(kNpuDir + "u55-128-deep-embedded.yaml");
  // Candidate 4: the U55-256 file (its own 48 KiB shared buffer), two decoders, then the
  // shared-buffer choice, applied after it, on the deep-embedded system of the base.
  const NpuConfig c = space.configure(base, 4);
  EXPECT_EQ(c.npu_name, "ethos-u55-256");
  EXPECT_EQ(c.macs_per_cycle, 256u);
  EXPECT_EQ(c.micro_block.w, 2u);
  EXPECT_EQ(c.weight_decoders, 2u);
  EXPECT_EQ(c.shared_buffer_bytes, 32768u);
  EXPECT_EQ(c.sram.size_bytes, base.sram.size_bytes);
  EXPECT_EQ(c.core_clock_hz, base.core_clock_hz);
  const NpuConfig first = space.configure(base, 0);
  EXPECT_EQ(first.macs_per_cycle, 64u);
  EXPECT_EQ(first.weight_decoders, 1u);
  EXPECT_EQ(first.shared_buffer_bytes, 16384u);
  EXPECT_EQ(space.describe(4),
            "mac_array=ethos-u55-256 npu.weight_decoders=2 npu.shared_buffer_bytes=32768");
  // One candidate alone (udc search --hardware): the same configuration.
  const HardwareSpace alone = space.only(4);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(config_fingerprint(alone.configure(base, 0)), config_fingerprint(c));
  EXPECT_EQ(alone.describe(0), space.describe(4));
  EXPECT_EQ(read_space("hardware: {}\n").size(), 1u);  // no choice: the base alone
}

TEST(HardwareSpace, BadChoicesAreNamed) {
  auto error = [](const std::string& text, size_t max = 4096) -> std::string {
    try {
      read_space(text, max);
    } catch (const common::ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error("hardware:\n  npu.macs: [64]\n").find("hardware.npu.macs: unknown NPU parameter"),
            std::string::npos);
  EXPECT_NE(error("hardware:\n  npu.cores: [1, 9]\n")
                .find("hardware.npu.cores: expected an integer 1..4, got '9'"),
            std::string::npos);
  EXPECT_NE(error("hardware:\n  arrays:\n    - {file: nowhere.yaml}\n").find("nowhere.yaml"),
            std::string::npos);
  EXPECT_NE(error("hardware:\n  arrays:\n    - {npu.macs_per_cycle: 3}\n")
                .find("hardware.arrays[0].npu.macs_per_cycle"),
            std::string::npos);
  EXPECT_NE(error("hardware:\n  arrays:\n    - {}\n").find("sets nothing"), std::string::npos);
  EXPECT_NE(error("hardware:\n  npu.cores: []\n").find("npu.cores"), std::string::npos);
  EXPECT_NE(error("hardware:\n  npu.cores: [1, 2]\n  npu.weight_decoders: [1, 2]\n", 3)
                .find("4 candidates, more than the 3 allowed"),
            std::string::npos);
}

}  // namespace
}  // namespace udc::npu_sim::test
