#include "udc/npu_sim/report.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace udc::npu_sim {

std::string CommandReport::bottleneck() const {
  const std::pair<double, const char*> parts[] = {{compute_cycles, "compute"},
                                                  {weight_wait_cycles, "weights"},
                                                  {input_wait_cycles, "input"},
                                                  {output_wait_cycles, "output"},
                                                  {dma_wait_cycles, "dma"}};
  const auto* best =
      std::max_element(std::begin(parts), std::end(parts),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
  if (best->first <= 0) return kind == CommandKind::Dma ? "transfer" : "overhead";
  return best->second;
}

std::string format_table(const JobReport& r) {
  std::string out = fmt::format(
      "{:>4} {:<17} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>9} {:>9}\n", "#",
      "command", "start", "cycles", "compute", "weights", "input", "output", "dma", "MAC%",
      "sram rd", "sram wr", "offchip rd");
  for (const CommandReport& c : r.commands) {
    out += fmt::format(
        "{:>4} {:<17} {:>11.0f} {:>11.0f} {:>9.0f} {:>9.0f} {:>9.0f} {:>9.0f} {:>9.0f} {:>6.1f} "
        "{:>9} {:>9} {:>9}  {}\n",
        c.index, command_name(c.kind), c.start_cycle, c.cycles(), c.compute_cycles,
        c.weight_wait_cycles, c.input_wait_cycles, c.output_wait_cycles, c.dma_wait_cycles,
        100 * c.mac_utilisation, c.traffic[0].read_bytes, c.traffic[0].write_bytes,
        c.traffic[1].read_bytes, !traits(c.kind).kernel ? "" : c.bottleneck());
  }
  out += fmt::format(
      "total: {:.0f} cycles = {:.4f} ms at {:.0f} MHz ({:.1f} inferences/s); {} MACs, MAC "
      "utilisation {:.1f}%\n",
      r.total_cycles, r.milliseconds(), r.core_clock_hz / 1e6,
      r.total_cycles > 0 ? 1e3 / r.milliseconds() : 0.0, r.macs, 100 * r.mac_utilisation);
  out += fmt::format("traffic: sram read {} B, write {} B; offchip read {} B, write {} B{}\n",
                     r.traffic[0].read_bytes, r.traffic[0].write_bytes, r.traffic[1].read_bytes,
                     r.traffic[1].write_bytes, r.timing_only ? " (timing only)" : "");
  if (!r.error.empty()) out += "error: " + r.error + "\n";
  return out;
}

namespace {
nlohmann::json traffic_json(const std::array<MemoryTraffic, kMemoryCount>& t) {
  nlohmann::json j;
  for (int m = 0; m < kMemoryCount; ++m) {
    j[memory_name(static_cast<MemoryId>(m))] = {{"read_bytes", t[m].read_bytes},
                                                {"write_bytes", t[m].write_bytes}};
  }
  return j;
}
}  // namespace

std::string to_json(const JobReport& r) {
  nlohmann::json commands = nlohmann::json::array();
  for (const CommandReport& c : r.commands) {
    commands.push_back({{"index", c.index},
                        {"op", command_name(c.kind)},
                        {"start_cycle", c.start_cycle},
                        {"cycles", c.cycles()},
                        {"overhead_cycles", c.overhead_cycles},
                        {"compute_cycles", c.compute_cycles},
                        {"weight_wait_cycles", c.weight_wait_cycles},
                        {"input_wait_cycles", c.input_wait_cycles},
                        {"output_wait_cycles", c.output_wait_cycles},
                        {"dma_wait_cycles", c.dma_wait_cycles},
                        {"bottleneck", c.bottleneck()},
                        {"macs", c.macs},
                        {"mac_utilisation", c.mac_utilisation},
                        {"weights_decoded", c.weights_decoded},
                        {"weight_stream_bytes", c.weight_stream_bytes},
                        {"decoder_utilisation", c.decoder_utilisation},
                        {"traffic", traffic_json(c.traffic)}});
  }
  nlohmann::json j{{"total_cycles", r.total_cycles},       {"milliseconds", r.milliseconds()},
                   {"core_clock_hz", r.core_clock_hz},     {"macs", r.macs},
                   {"mac_utilisation", r.mac_utilisation}, {"timing_only", r.timing_only},
                   {"traffic", traffic_json(r.traffic)},   {"commands", commands}};
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump(1);
}

std::string to_chrome_trace(const JobReport& r) {
  // One "thread" per unit, in a fixed order so tracks line up between traces.
  std::map<std::string, int> tracks;
  const char* order[] = {"command processor", "dma", "mac array", "output unit"};
  for (const char* name : order) tracks.emplace(name, static_cast<int>(tracks.size()));
  nlohmann::json events = nlohmann::json::array();
  for (const TraceEvent& e : r.trace) {
    auto [it, inserted] = tracks.emplace(e.track, static_cast<int>(tracks.size()));
    (void)inserted;
    events.push_back({{"name", e.name},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", it->second},
                      {"ts", e.start_cycle},
                      {"dur", e.duration_cycles},
                      {"args", {{"command", e.command}}}});
  }
  for (const auto& [name, tid] : tracks) {
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", 1},
                      {"tid", tid},
                      {"args", {{"name", name}}}});
    events.push_back({{"name", "thread_sort_index"},
                      {"ph", "M"},
                      {"pid", 1},
                      {"tid", tid},
                      {"args", {{"sort_index", tid}}}});
  }
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", 1},
                    {"args", {{"name", "NPU (1 us = 1 cycle)"}}}});
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ns"}}.dump();
}

}  // namespace udc::npu_sim
