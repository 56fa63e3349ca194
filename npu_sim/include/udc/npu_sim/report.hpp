// What a simulated job reports: per command and in total, cycles and where they went,
// bytes moved per memory, utilisation; renderers for a terminal table, JSON and a
// Chrome trace-event timeline.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "udc/npu_sim/command_stream.hpp"

namespace udc::npu_sim {

struct MemoryTraffic {
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};

/// One command's account. Cycles are NPU core cycles, measured from the job's start.
struct CommandReport {
  size_t index = 0;
  CommandKind kind = CommandKind::Dma;
  double start_cycle = 0;  ///< command processor picks it up
  double end_cycle = 0;    ///< last effect done (DMA: data landed; op: last output written)
  double cycles() const { return end_cycle - start_cycle; }

  // Where an operation's cycles went, seen from the MAC array (they add up to cycles()).
  double overhead_cycles = 0;     ///< command fetch and operation set-up
  double compute_cycles = 0;      ///< MAC array busy
  double weight_wait_cycles = 0;  ///< MAC array idle, waiting for decoded weights
  double input_wait_cycles = 0;   ///< MAC array idle, waiting for the input feature map
  double output_wait_cycles = 0;  ///< MAC array stalled on full output buffers, and the drain
  double dma_wait_cycles = 0;     ///< wait_dma: command processor blocked on DMA

  std::array<MemoryTraffic, kMemoryCount> traffic{};  ///< by MemoryId
  uint64_t macs = 0;
  uint64_t weights_decoded = 0;
  uint64_t weight_stream_bytes = 0;
  double mac_utilisation = 0;               ///< macs / (cycles * total MAC rate)
  std::vector<double> decoder_utilisation;  ///< per engine: decode work / cycles
  /// The largest of compute, weights, input, output and DMA waits, by name.
  std::string bottleneck() const;
};

/// One span on the timeline.
struct TraceEvent {
  std::string track;  ///< unit: "command processor", "dma", "decoder 0.1", "mac array", ...
  std::string name;
  double start_cycle = 0;
  double duration_cycles = 0;
  size_t command = 0;
};

struct JobReport {
  double total_cycles = 0;
  double core_clock_hz = 0;
  std::vector<CommandReport> commands;
  std::array<MemoryTraffic, kMemoryCount> traffic{};
  uint64_t macs = 0;
  double mac_utilisation = 0;
  bool timing_only = false;
  std::string error;  ///< non-empty when the job stopped on an error (named command)
  std::vector<std::vector<uint8_t>> outputs;  ///< one per CommandStream::outputs
  std::vector<TraceEvent> trace;

  double milliseconds() const { return total_cycles / core_clock_hz * 1e3; }
};

/// Human-readable table, one row per command plus totals.
std::string format_table(const JobReport& report);
/// JSON for tools (no trace).
std::string to_json(const JobReport& report);
/// Chrome trace-event JSON (opens in Perfetto): one track per unit, 1 us = 1 cycle.
std::string to_chrome_trace(const JobReport& report);

}  // namespace udc::npu_sim
