#include "udc/firmware_model/driver.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace udc::firmware_model {

npu_sim::CommandStream stream_with_inputs(const Model& model, const CompiledModel& compiled,
                                          const std::vector<TensorValues>& inputs) {
  if (inputs.size() != model.inputs.size()) {
    throw std::invalid_argument(fmt::format("model {} takes {} inputs, {} given", model.name,
                                            model.inputs.size(), inputs.size()));
  }
  npu_sim::CommandStream stream = compiled.stream;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int32_t t = model.inputs[i];
    const TensorInfo& info = model.tensors[size_t(t)];
    if (inputs[i].size() != info.elements()) {
      throw std::invalid_argument(fmt::format("input {} ({}) has {} bytes, expected {}", i,
                                              info.name, inputs[i].size(), info.elements()));
    }
    npu_sim::MemoryImage image;
    image.memory = compiled.plan.tensors[size_t(t)].memory;
    image.address = compiled.plan.tensors[size_t(t)].address;
    image.bytes.assign(reinterpret_cast<const uint8_t*>(inputs[i].data()),
                       reinterpret_cast<const uint8_t*>(inputs[i].data()) + inputs[i].size());
    stream.images.push_back(std::move(image));
  }
  return stream;
}

NpuRun run_on_npu(const Model& model, const CompiledModel& compiled,
                  const npu_sim::NpuConfig& config, const std::vector<TensorValues>& inputs,
                  const npu_sim::RunOptions& options) {
  NpuRun run;
  const npu_sim::CommandStream stream = stream_with_inputs(model, compiled, inputs);
  run.job = npu_sim::Simulator::instance().run(stream, config, options);
  if (!run.job.error.empty()) {
    throw std::runtime_error("model " + model.name + " on " + config.npu_name + ": " +
                             run.job.error);
  }
  for (const std::vector<uint8_t>& bytes : run.job.outputs) {
    run.outputs.emplace_back(reinterpret_cast<const int8_t*>(bytes.data()),
                             reinterpret_cast<const int8_t*>(bytes.data()) + bytes.size());
  }
  for (const LayerCommands& layer : compiled.layers) {
    LayerReport r;
    r.operation = layer.operation;
    r.totals.kind = npu_sim::CommandKind::WaitDma;
    r.sram_live_bytes =
        compiled.plan.live_bytes.empty()
            ? 0
            : compiled.plan
                  .live_bytes[std::min(layer.operation, compiled.plan.live_bytes.size() - 1)];
    bool first = true;
    for (size_t c = layer.first_command; c < layer.end_command; ++c) {
      const npu_sim::CommandReport& cr = run.job.commands[c];
      if (cr.kind == npu_sim::CommandKind::Dma) continue;
      if (first) r.start_cycle = cr.start_cycle;
      first = false;
      r.end_cycle = std::max(r.end_cycle, cr.end_cycle);
      npu_sim::CommandReport& t = r.totals;
      t.kind = cr.kind == npu_sim::CommandKind::WaitDma ? t.kind : cr.kind;
      t.overhead_cycles += cr.overhead_cycles;
      t.compute_cycles += cr.compute_cycles;
      t.weight_wait_cycles += cr.weight_wait_cycles;
      t.input_wait_cycles += cr.input_wait_cycles;
      t.output_wait_cycles += cr.output_wait_cycles;
      t.dma_wait_cycles += cr.dma_wait_cycles;
      t.macs += cr.macs;
      t.weights_decoded += cr.weights_decoded;
      t.weight_stream_bytes += cr.weight_stream_bytes;
      for (int m = 0; m < npu_sim::kMemoryCount; ++m) {
        t.traffic[size_t(m)].read_bytes += cr.traffic[size_t(m)].read_bytes;
        t.traffic[size_t(m)].write_bytes += cr.traffic[size_t(m)].write_bytes;
      }
    }
    r.totals.start_cycle = r.start_cycle;
    r.totals.end_cycle = r.end_cycle;
    run.layers.push_back(r);
  }
  return run;
}

namespace {

/// "byte B (y Y, x X, channel C)" of an element of an HWC tensor.
std::string position_text(const TensorInfo& info, size_t index) {
  const size_t c = index % info.shape[2], x = index / info.shape[2] % info.shape[1],
               y = index / info.shape[2] / info.shape[1];
  return fmt::format("byte {} (y {}, x {}, channel {})", index, y, x, c);
}

/// The first difference between NPU and reference values of the tensors the run read
/// back, in execution order; empty if none.
std::string first_difference(const Model& model, const CompiledModel& compiled, const NpuRun& run,
                             const std::vector<TensorValues>& golden) {
  // Order the read-back tensors by the operation that produced them.
  std::vector<int32_t> producer(model.tensors.size(), -1);
  for (size_t i = 0; i < model.operations.size(); ++i) {
    producer[size_t(model.operations[i].output)] = int32_t(i);
  }
  std::vector<size_t> order(compiled.output_tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return producer[size_t(compiled.output_tensors[a])] <
           producer[size_t(compiled.output_tensors[b])];
  });
  for (size_t i : order) {
    const int32_t t = compiled.output_tensors[i];
    const TensorValues& want = golden[size_t(t)];
    const TensorValues& got = run.outputs[i];
    for (size_t k = 0; k < want.size(); ++k) {
      if (got[k] == want[k]) continue;
      const int32_t op = producer[size_t(t)];
      return fmt::format("layer {} ({}, {}) output {}: {}: NPU {} != reference {}", op,
                         op >= 0 ? model.operations[size_t(op)].name : "input",
                         op >= 0 ? op_type_name(model.operations[size_t(op)].type) : "-",
                         model.tensors[size_t(t)].name, position_text(model.tensors[size_t(t)], k),
                         int(got[k]), int(want[k]));
    }
  }
  return {};
}

}  // namespace

Verification verify_on_npu(const Model& model, const CompiledModel& compiled,
                           const npu_sim::NpuConfig& config,
                           const std::vector<TensorValues>& inputs, const CompileOptions& options) {
  Verification v;
  v.reference = run_reference(model, inputs);
  v.run = run_on_npu(model, compiled, config, inputs);
  v.difference = first_difference(model, compiled, v.run, v.reference);
  if (!v.difference.empty()) {
    // Rerun with every tensor kept apart to name the first layer that differs.
    CompileOptions separate = options;
    separate.reuse_memory = false;
    const CompileResult debug = compile(model, config, separate);
    if (debug.fits()) {
      const NpuRun all = run_on_npu(model, debug.compiled, config, inputs);
      const std::string first = first_difference(model, debug.compiled, all, v.reference);
      if (!first.empty()) v.difference = first;
    }
  }
  return v;
}

NpuRun run_timing_only(const Model& model, const CompiledModel& compiled,
                       const npu_sim::NpuConfig& config) {
  std::vector<TensorValues> zeros;
  for (int32_t t : model.inputs) zeros.emplace_back(model.tensors[size_t(t)].elements(), 0);
  npu_sim::RunOptions timing;
  timing.timing_only = true;
  return run_on_npu(model, compiled, config, zeros, timing);
}

namespace {

/// A layer's cycles: the sum of where its commands' time went (overhead, compute, waits).
double layer_cycles(const npu_sim::CommandReport& t) {
  return t.overhead_cycles + t.compute_cycles + t.weight_wait_cycles + t.input_wait_cycles +
         t.output_wait_cycles + t.dma_wait_cycles;
}

}  // namespace

std::string format_layer_report(const Model& model, const CompiledModel& compiled,
                                const npu_sim::NpuConfig& config, const NpuRun& run) {
  std::string text = fmt::format("{} on {} + {} ({} MHz), weights {}\n", model.name,
                                 config.npu_name, config.system_name, config.core_clock_hz / 1e6,
                                 weight_placement_name(compiled.weights));
  text += fmt::format("{:<3} {:<18} {:<16} {:>10} {:>9} {:>6} {:>10} {:>6} {:>5} {:<8} {:>9}\n",
                      "#", "layer", "op", "MACs", "w bytes", "bits/w", "cycles", "util%", "tiles",
                      "bound", "SRAM live");
  for (const LayerReport& r : run.layers) {
    const Operation& op = model.operations[r.operation];
    const LayerCommands& lc = compiled.layers[r.operation];
    const double cycles = layer_cycles(r.totals);
    const std::string bits = op.weights.empty()
                                 ? "-"
                                 : fmt::format("{:.2f}", 8.0 * double(lc.weight_stream_bytes) /
                                                             double(op.weights.size()));
    const double util = cycles > 0 ? 100.0 * double(r.totals.macs) /
                                         (cycles * double(config.total_macs_per_cycle()))
                                   : 0.0;
    text +=
        fmt::format("{:<3} {:<18} {:<16} {:>10} {:>9} {:>6} {:>10.0f} {:>6.1f} {:>5} {:<8} {:>9}\n",
                    r.operation, op.name.substr(0, 18), op_type_name(op.type), op_macs(model, op),
                    lc.weight_stream_bytes, bits, cycles, util, lc.tiles,
                    cycles > 0 ? r.totals.bottleneck() : "-", r.sram_live_bytes);
  }
  const double ms = run.job.milliseconds();
  uint64_t stream_bytes = 0, weights = 0;
  for (size_t i = 0; i < model.operations.size(); ++i) {
    stream_bytes += compiled.layers[i].weight_stream_bytes;
    weights += model.operations[i].weights.size();
  }
  text += fmt::format(
      "total: {:.0f} cycles = {:.3f} ms at {} MHz, {:.1f} inferences/s; {} MACs ({:.1f}% MAC "
      "utilisation)\n",
      run.job.total_cycles, ms, config.core_clock_hz / 1e6, ms > 0 ? 1e3 / ms : 0.0, run.job.macs,
      100.0 * run.job.mac_utilisation);
  text += fmt::format(
      "weights: {} in {} bytes of streams ({:.2f} bits/weight), {} bytes of flash in all; SRAM "
      "peak {} bytes (activations {})\n",
      weights, stream_bytes, weights ? 8.0 * double(stream_bytes) / double(weights) : 0.0,
      compiled.plan.flash_bytes + compiled.plan.sram_weights_bytes, compiled.plan.sram_bytes,
      compiled.plan.arena_bytes);
  text += fmt::format("traffic: SRAM read {} written {}; off-chip read {} written {} [bytes]\n",
                      run.job.traffic[0].read_bytes, run.job.traffic[0].write_bytes,
                      run.job.traffic[1].read_bytes, run.job.traffic[1].write_bytes);
  return text;
}

std::string layer_report_json(const Model& model, const CompiledModel& compiled,
                              const npu_sim::NpuConfig& config, const NpuRun& run) {
  nlohmann::json j;
  j["model"] = model.name;
  j["npu"] = config.npu_name;
  j["system"] = config.system_name;
  j["weights"] = weight_placement_name(compiled.weights);
  j["total_cycles"] = run.job.total_cycles;
  j["milliseconds"] = run.job.milliseconds();
  j["inferences_per_second"] = run.job.milliseconds() > 0 ? 1e3 / run.job.milliseconds() : 0.0;
  j["macs"] = run.job.macs;
  j["mac_utilisation"] = run.job.mac_utilisation;
  j["sram_bytes"] = compiled.plan.sram_bytes;
  j["arena_bytes"] = compiled.plan.arena_bytes;
  j["flash_bytes"] = compiled.plan.flash_bytes;
  j["sram_weight_bytes"] = compiled.plan.sram_weights_bytes;
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerReport& r : run.layers) {
    const Operation& op = model.operations[r.operation];
    const LayerCommands& lc = compiled.layers[r.operation];
    const double cycles = layer_cycles(r.totals);
    layers.push_back({{"name", op.name},
                      {"op", op_type_name(op.type)},
                      {"macs", op_macs(model, op)},
                      {"weights", op.weights.size()},
                      {"weight_stream_bytes", lc.weight_stream_bytes},
                      {"tiles", lc.tiles},
                      {"cycles", cycles},
                      {"compute_cycles", r.totals.compute_cycles},
                      {"weight_wait_cycles", r.totals.weight_wait_cycles},
                      {"input_wait_cycles", r.totals.input_wait_cycles},
                      {"output_wait_cycles", r.totals.output_wait_cycles},
                      {"dma_wait_cycles", r.totals.dma_wait_cycles},
                      {"overhead_cycles", r.totals.overhead_cycles},
                      {"bottleneck", cycles > 0 ? r.totals.bottleneck() : "none"},
                      {"sram_live_bytes", r.sram_live_bytes}});
  }
  j["layers"] = layers;
  return j.dump(1);
}

}  // namespace udc::firmware_model
