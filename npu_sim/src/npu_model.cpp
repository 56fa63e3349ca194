// SystemC model of the NPU. Units are SC_THREADs that advance by whole transactions or
// blocks (annotated delays), never per clock: command processor, DMA engine, weight
// decompression engines, MAC array, output unit. Memories are shared channels with
// first-come first-served arbitration per transaction. Time base: 1 ns = 1 core cycle.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include <systemc>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <stdexcept>

#include "kernels.hpp"
#include "sanitizer_fibers.hpp"
#include "udc/compression/decoder.hpp"
#include "udc/npu_sim/simulator.hpp"
#include "udc/npu_sim/timing.hpp"

namespace udc::npu_sim {
namespace {

using sc_core::sc_event;
using sc_core::SC_NS;
using sc_core::sc_time;

/// Exact for whole cycles (integer division of picosecond counts below 2^53).
double now_cycles() {
  return sc_core::sc_time_stamp() / sc_time(1, SC_NS);
}
void wait_cycles(double cycles) {
  if (cycles > 0) sc_core::wait(sc_time(cycles, SC_NS));
}
void wait_until(double cycle) {
  wait_cycles(cycle - now_cycles());
}

constexpr int kMaxEngines = 32;  ///< cores (<= 4) x decoders per core (<= 8)

/// A memory: storage plus a data channel shared by all masters. The channel keeps a
/// calendar of reserved data phases; a transaction takes the earliest gap that fits at
/// or after the time it may start (first come, first served, without blocking an
/// earlier request behind a reservation made for later).
struct Memory {
  const MemoryConfig* config = nullptr;
  std::vector<uint8_t> storage;
  std::map<double, double> busy;  ///< reserved data phases: start cycle -> end cycle

  /// Reserves `cycles` of the channel starting no earlier than `earliest`; returns the
  /// start. Phases ending before `now` are forgotten.
  double reserve(double earliest, double cycles, double now) {
    while (!busy.empty() && busy.begin()->second <= now) busy.erase(busy.begin());
    double start = earliest;
    for (const auto& [phase_start, phase_end] : busy) {
      if (phase_start >= start + cycles) break;
      if (phase_end > start) start = phase_end;
    }
    if (cycles > 0) busy.emplace(start, start + cycles);
    return start;
  }
};

struct DmaRequest {
  size_t command = 0;
};

}  // namespace

class NpuModel : public sc_core::sc_module {
 public:
  explicit NpuModel(sc_core::sc_module_name name) : sc_module(name) {
    sc_core::sc_spawn(sc_bind(&NpuModel::command_thread, this));
    sc_core::sc_spawn(sc_bind(&NpuModel::dma_thread, this));
    sc_core::sc_spawn(sc_bind(&NpuModel::input_thread, this));
    sc_core::sc_spawn(sc_bind(&NpuModel::mac_thread, this));
    sc_core::sc_spawn(sc_bind(&NpuModel::output_thread, this));
    for (int e = 0; e < kMaxEngines; ++e)
      sc_core::sc_spawn(sc_bind(&NpuModel::decoder_thread, this, e));
  }

  JobReport run(const CommandStream& stream, const NpuConfig& config, const RunOptions& options);

 private:
  // --- job state (reset per job) ---
  const CommandStream* stream_ = nullptr;
  NpuConfig config_;
  RunOptions options_;
  Memory memories_[kMemoryCount];
  JobReport report_;
  double job_start_ = 0;
  bool job_done_ = false;
  bool started_ = false;  ///< simulation initialised (units waiting for work)
  sc_event job_start_event_;

  // DMA queue
  std::deque<DmaRequest> dma_queue_;
  size_t dma_pending_ = 0;
  sc_event dma_queued_, dma_done_;

  // Current kernel operation. Blocks are numbered spatial block major, depth block minor:
  // block b covers spatial block b / depth_blocks and depth block b % depth_blocks.
  struct Op {
    const Command* command = nullptr;
    size_t index = 0;
    BlockShape shape;       ///< full block extents
    uint32_t blocks_x = 1;  ///< spatial blocks per row of blocks
    uint32_t depth_blocks = 1;
    uint32_t blocks = 0;  ///< all blocks
    int engines = 0;
    std::vector<std::deque<uint32_t>> ready;        ///< per engine: decoded blocks in order
    std::vector<std::vector<int16_t>> weights;      ///< per depth block (functional runs)
    std::vector<std::vector<ChannelScale>> scales;  ///< per depth block (functional runs)
    std::vector<double>
        first_weights_at;  ///< per block: cycle its first weights arrive (-1: not yet issued)
    uint32_t inputs_fetched = 0;    ///< blocks whose input block is in the shared buffer
    uint32_t blocks_computed = 0;   ///< blocks the MAC array has finished
    std::deque<uint32_t> computed;  ///< blocks waiting for the output unit
    std::unique_ptr<KernelContext> kernel;
    double mac_finished_at = 0;  ///< cycle the MAC array handed over its last block
    uint32_t next_fetch = 0;     ///< weight fetches are issued in block order

    /// The clipped extents and origin of block b.
    struct Place {
      uint32_t row = 0, col = 0, depth_block = 0, spatial = 0;
      BlockShape extent;
    };
    Place place(uint32_t b) const {
      Place p;
      p.spatial = b / depth_blocks;
      p.depth_block = b % depth_blocks;
      p.row = (p.spatial / blocks_x) * shape.h;
      p.col = (p.spatial % blocks_x) * shape.w;
      p.extent.h = std::min(shape.h, command->ofm.shape[0] - p.row);
      p.extent.w = std::min(shape.w, command->ofm.shape[1] - p.col);
      p.extent.d = command->block_channels(p.depth_block);
      return p;
    }
  } op_;
  sc_event op_start_, op_done_, fetch_turn_, weights_started_, weights_ready_, weight_buffer_freed_,
      block_computed_, output_buffer_freed_, input_fetched_, input_buffer_freed_;
  /// Cycle by which every write the job has posted is acknowledged.
  double writes_acknowledged_at_ = 0;

  void command_thread();
  void dma_thread();
  void decoder_thread(int engine);
  void input_thread();
  void mac_thread();
  void output_thread();

  // --- helpers ---
  CommandReport& row(size_t command) { return report_.commands[command]; }
  double job_cycle() const { return now_cycles() - job_start_; }
  void trace(const char* track, std::string name, double start, double end, size_t command) {
    if (options_.trace && end > start) {
      report_.trace.push_back(
          TraceEvent{track, std::move(name), start - job_start_, end - start, command});
    }
  }
  void trace(const std::string& track, std::string name, double start, double end, size_t command) {
    if (options_.trace && end > start) {
      report_.trace.push_back(
          TraceEvent{track, std::move(name), start - job_start_, end - start, command});
    }
  }
  /// "block N" on `track`; the name is only built when tracing (a hot path per block).
  template <typename Track>
  void trace_block(const Track& track, uint32_t block, double start, double end, size_t command) {
    if (options_.trace && end > start)
      trace(track, "block " + std::to_string(block), start, end, command);
  }
  void fail(size_t command, const std::string& message) {
    if (report_.error.empty()) {
      report_.error = "command " + std::to_string(command) + " (" +
                      command_name(stream_->commands[command].kind) + "): " + message;
    }
  }
  /// Moves `bytes` over one memory's channel in transactions, waiting for each data
  /// phase (other masters interleave between transactions). Returns the cycle the last
  /// data arrived; the caller adds the latency.
  double transfer(MemoryId id, uint64_t bytes, bool write, size_t command);
  /// Moves an access pattern (runs of contiguous bytes, each rounded up to whole bursts)
  /// in groups of about dma_chunk_bytes; `bytes` is what is really moved (reports).
  double transfer(MemoryId id, const Access& access, uint64_t bytes, bool write, size_t command);
  bool in_bounds(MemoryId id, uint64_t address, uint64_t bytes) const {
    const uint64_t size = memories_[static_cast<int>(id)].config->size_bytes;
    return address <= size && bytes <= size - address;
  }
  std::string check_command_bounds(const Command& c) const;
};

double NpuModel::transfer(MemoryId id, const Access& access, uint64_t bytes, bool write,
                          size_t command) {
  Memory& m = memories_[static_cast<int>(id)];
  MemoryTraffic& t = row(command).traffic[static_cast<int>(id)];
  (write ? t.write_bytes : t.read_bytes) += bytes;
  double end = now_cycles();
  if (access.runs == 0 || access.run_bytes == 0) return end;
  const uint64_t per_group =
      std::max<uint64_t>(1, config_.dma_chunk_bytes / std::max<uint64_t>(1, access.run_bytes));
  const double run_cycles = data_cycles(*m.config, access.run_bytes);
  for (uint64_t done = 0; done < access.runs; done += per_group) {
    const uint64_t runs = std::min<uint64_t>(per_group, access.runs - done);
    const double cycles = run_cycles * double(runs);
    end = m.reserve(now_cycles(), cycles, now_cycles()) + cycles;
    wait_until(end);
  }
  return end;
}

double NpuModel::transfer(MemoryId id, uint64_t bytes, bool write, size_t command) {
  Memory& m = memories_[static_cast<int>(id)];
  MemoryTraffic& t = row(command).traffic[static_cast<int>(id)];
  (write ? t.write_bytes : t.read_bytes) += bytes;
  double end = now_cycles();
  for (uint64_t done = 0; done < bytes; done += config_.dma_chunk_bytes) {
    const uint64_t chunk = std::min<uint64_t>(config_.dma_chunk_bytes, bytes - done);
    const double cycles = data_cycles(*m.config, chunk);
    end = m.reserve(now_cycles(), cycles, now_cycles()) + cycles;
    wait_until(end);
  }
  return end;
}

namespace {

/// One memory range a command reads or writes.
struct CommandRange {
  MemoryId memory = MemoryId::Sram;
  uint64_t address = 0, bytes = 0;
  std::string what;  ///< "ifm", "weight stream 2", ...
};

/// Every range `c` touches: the one list that bounds checks and memory sizing share.
std::vector<CommandRange> command_ranges(const Command& c) {
  std::vector<CommandRange> ranges;
  auto tensor = [&](const TensorRef& t, const char* name) {
    ranges.push_back({t.memory, t.address, t.end_address() - t.address, name});
  };
  if (c.kind == CommandKind::Dma) {
    ranges.push_back({c.dma_src_memory, c.dma_src_address, c.dma_bytes, "source"});
    ranges.push_back({c.dma_dst_memory, c.dma_dst_address, c.dma_bytes, "destination"});
    return ranges;
  }
  if (c.kind == CommandKind::WaitDma) return ranges;
  tensor(c.ifm, "ifm");
  tensor(c.ofm, "ofm");
  if (traits(c.kind).second_input) tensor(c.ifm2, "ifm2");
  if (has_weights(c.kind)) {
    for (size_t b = 0; b < c.weight_streams.size(); ++b) {
      ranges.push_back({c.weight_memory, c.weight_streams[b].address, c.weight_streams[b].bytes,
                        "weight stream " + std::to_string(b)});
    }
    ranges.push_back({c.weight_memory, c.scale_address,
                      uint64_t{c.ofm.shape[2]} * kScaleRecordBytes, "scale records"});
  }
  return ranges;
}

}  // namespace

std::string NpuModel::check_command_bounds(const Command& c) const {
  for (const CommandRange& r : command_ranges(c)) {
    if (!in_bounds(r.memory, r.address, r.bytes)) {
      return r.what + " spans bytes " + std::to_string(r.address) + ".." +
             std::to_string(r.address + r.bytes) + " beyond " + memory_name(r.memory) + " (" +
             std::to_string(memories_[static_cast<int>(r.memory)].config->size_bytes) + " bytes)";
    }
  }
  return {};
}

void NpuModel::command_thread() {
  for (;;) {
    sc_core::wait(job_start_event_);
    const auto& commands = stream_->commands;
    for (size_t i = 0; i < commands.size() && report_.error.empty(); ++i) {
      const Command& c = commands[i];
      CommandReport& r = row(i);
      const double start = now_cycles();
      r.start_cycle = start - job_start_;
      wait_cycles(config_.command_cycles);
      r.overhead_cycles = config_.command_cycles;
      if (const std::string problem = check_command_bounds(c); !problem.empty()) {
        fail(i, problem);
        r.end_cycle = job_cycle();
        break;
      }
      if (c.kind == CommandKind::Dma) {
        ++dma_pending_;
        dma_queue_.push_back(DmaRequest{i});
        dma_queued_.notify(sc_core::SC_ZERO_TIME);
        r.end_cycle = job_cycle();  // until the DMA engine takes it
        trace("command processor", "dma issue", start, now_cycles(), i);
        continue;
      }
      if (c.kind == CommandKind::WaitDma) {
        const double wait_start = now_cycles();
        while (dma_pending_ > c.max_pending_dma) sc_core::wait(dma_done_);
        r.dma_wait_cycles = now_cycles() - wait_start;
        r.end_cycle = job_cycle();
        trace("command processor", "wait_dma", start, now_cycles(), i);
        continue;
      }
      // Kernel operation: hand it to the decoders, MAC array and output unit.
      op_ = Op{};
      op_.command = &c;
      op_.index = i;
      op_.shape = ofm_block_shape(c);
      op_.blocks_x = (c.ofm.shape[1] + op_.shape.w - 1) / op_.shape.w;
      op_.depth_blocks = c.ofm_blocks();
      op_.blocks = static_cast<uint32_t>(spatial_blocks(c)) * op_.depth_blocks;
      op_.engines = static_cast<int>(config_.cores * config_.weight_decoders);
      op_.ready.assign(static_cast<size_t>(op_.engines), {});
      op_.weights.assign(op_.depth_blocks, {});
      op_.first_weights_at.assign(op_.blocks, -1.0);
      op_.scales.assign(op_.depth_blocks, {});
      r.macs = c.macs();
      r.decoder_utilisation.assign(has_weights(c.kind) ? static_cast<size_t>(op_.engines) : 0, 0.0);
      if (!options_.timing_only) {
        MemoryArrays arrays;
        for (int m = 0; m < kMemoryCount; ++m) {
          arrays.base[m] = memories_[m].storage.data();
          arrays.size[m] = memories_[m].storage.size();
        }
        op_.kernel = std::make_unique<KernelContext>(c, arrays);
      }
      op_start_.notify(sc_core::SC_ZERO_TIME);
      sc_core::wait(op_done_);
      r.end_cycle = job_cycle();
      const double cycles = r.cycles();
      if (cycles > 0) {
        r.mac_utilisation = static_cast<double>(r.macs) /
                            (cycles * static_cast<double>(config_.total_macs_per_cycle()));
        for (double& u : r.decoder_utilisation) u /= cycles;
      }
      trace("command processor", command_name(c.kind), start, now_cycles(), i);
      op_.kernel.reset();
    }
    // The job ends when every DMA has landed and every posted write is acknowledged.
    while (dma_pending_ > 0) sc_core::wait(dma_done_);
    wait_until(std::max(now_cycles(), writes_acknowledged_at_));
    job_done_ = true;
  }
}

void NpuModel::dma_thread() {
  for (;;) {
    while (dma_queue_.empty()) sc_core::wait(dma_queued_);
    const DmaRequest request = dma_queue_.front();
    dma_queue_.pop_front();
    const Command& c = stream_->commands[request.command];
    CommandReport& r = row(request.command);
    const double start = now_cycles();
    Memory& src = memories_[static_cast<int>(c.dma_src_memory)];
    Memory& dst = memories_[static_cast<int>(c.dma_dst_memory)];
    r.traffic[static_cast<int>(c.dma_src_memory)].read_bytes += c.dma_bytes;
    r.traffic[static_cast<int>(c.dma_dst_memory)].write_bytes += c.dma_bytes;
    for (uint64_t done = 0; done < c.dma_bytes; done += config_.dma_chunk_bytes) {
      const uint64_t chunk = std::min<uint64_t>(config_.dma_chunk_bytes, c.dma_bytes - done);
      // Cut-through: the chunk is written as it arrives, so each channel is busy only
      // for its own data cycles and the slower side sets the pace.
      const double now = now_cycles();
      const double read_cycles = data_cycles(*src.config, chunk);
      const double read_end = src.reserve(now, read_cycles, now) + read_cycles;
      const double write_cycles = data_cycles(*dst.config, chunk);
      const double write_end =
          dst.reserve(std::max(read_end - write_cycles, now), write_cycles, now) + write_cycles;
      const double end = std::max(read_end, write_end);
      wait_until(end);
    }
    wait_cycles(src.config->read_latency_cycles + dst.config->write_latency_cycles);
    if (!options_.timing_only && c.dma_bytes > 0) {
      std::memmove(dst.storage.data() + c.dma_dst_address, src.storage.data() + c.dma_src_address,
                   c.dma_bytes);
    }
    r.end_cycle = job_cycle();
    trace("dma", "dma " + std::to_string(c.dma_bytes) + " B", start, now_cycles(), request.command);
    --dma_pending_;
    dma_done_.notify(sc_core::SC_ZERO_TIME);
  }
}

void NpuModel::decoder_thread(int engine) {
  for (;;) {
    sc_core::wait(op_start_);
    if (engine >= op_.engines || !has_weights(op_.command->kind)) continue;
    const Command& c = *op_.command;
    const size_t index = op_.index;
    CommandReport& r = row(index);
    const std::string track = "decoder " + std::to_string(engine);
    const MemoryConfig& weight_memory = *memories_[static_cast<int>(c.weight_memory)].config;
    for (uint32_t block = static_cast<uint32_t>(engine); block < op_.blocks;
         block += static_cast<uint32_t>(op_.engines)) {
      while (op_.ready[engine].size() >= config_.weight_buffers)
        sc_core::wait(weight_buffer_freed_);
      // Fetches go out in block order (one weight-stream reader), so extra engines add
      // decode parallelism without letting a later block's fetch delay an earlier one.
      while (op_.next_fetch != block) sc_core::wait(fetch_turn_);
      const Op::Place place = op_.place(block);
      const uint32_t depth_block = place.depth_block;
      const double start = now_cycles();
      const uint32_t channels = c.block_channels(depth_block);
      const WeightStreamRef& stream = c.weight_streams[depth_block];
      const uint64_t scale_bytes = uint64_t{channels} * kScaleRecordBytes;
      // The stream and its scale records: each block of a spatial block fetches its
      // depth slice's weights again, as the NPU does not keep them across blocks. The
      // reader (one for all engines) keeps requests outstanding, so only the operation's
      // first fetch waits for the memory's read latency.
      const double latency = block == 0 ? weight_memory.read_latency_cycles : 0;
      const double first_data = start + latency;
      // Decoded weights stream into the MAC array through a FIFO: it may start a block
      // once the block's first data is in, and finishes it no earlier than the decoder.
      op_.first_weights_at[block] = first_data;
      weights_started_.notify(sc_core::SC_ZERO_TIME);
      const double fetched =
          transfer(c.weight_memory, stream.bytes + scale_bytes, false, index) + latency;
      ++op_.next_fetch;
      fetch_turn_.notify(sc_core::SC_ZERO_TIME);
      const uint64_t weights = channels * c.weights_per_channel();
      const double work = decode_cycles(stream, weights, config_);
      wait_until(std::max(fetched, first_data + work));
      r.weights_decoded += weights;
      r.weight_stream_bytes += stream.bytes;
      r.decoder_utilisation[static_cast<size_t>(engine)] += work;
      if (!options_.timing_only && place.spatial == 0) {
        const Memory& m = memories_[static_cast<int>(c.weight_memory)];
        compression::DecodeOptions decode_options;
        decode_options.max_weights = weights;
        const compression::DecodeResult decoded = compression::decode_stream(
            m.storage.data() + stream.address, stream.bytes, decode_options);
        if (decoded.error) {
          fail(index, "weight stream of block " + std::to_string(depth_block) + " at " +
                          memory_name(c.weight_memory) + " " + std::to_string(stream.address) +
                          ": " + decoded.error->to_string());
        } else if (decoded.weights.size() != weights) {
          fail(index, "weight stream of block " + std::to_string(depth_block) + " decodes to " +
                          std::to_string(decoded.weights.size()) + " weights, expected " +
                          std::to_string(weights));
        }
        op_.weights[depth_block] = decoded.weights;
        op_.weights[depth_block].resize(weights, 0);
        auto& scales = op_.scales[depth_block];
        scales.resize(channels);
        const uint64_t first_record =
            c.scale_address + uint64_t{depth_block} * c.ofm_block_depth * kScaleRecordBytes;
        for (uint32_t k = 0; k < channels; ++k) {
          scales[k] = read_scale_record(m.storage.data() + first_record + k * kScaleRecordBytes);
          if (scales[k].shift < -31 || scales[k].shift > 30) {
            fail(index, "scale record of channel " +
                            std::to_string(depth_block * c.ofm_block_depth + k) + " has shift " +
                            std::to_string(scales[k].shift) + " (expected -31..30)");
            scales[k].shift = 0;
          }
        }
      }
      trace_block(track, block, start, now_cycles(), index);
      op_.ready[engine].push_back(block);
      weights_ready_.notify(sc_core::SC_ZERO_TIME);
    }
  }
}

void NpuModel::input_thread() {
  for (;;) {
    sc_core::wait(op_start_);
    const Command& c = *op_.command;
    const size_t index = op_.index;
    // Two input blocks fit the shared buffer: the next is fetched while the MAC array
    // works on the current one.
    constexpr uint32_t kInputBuffers = 2;
    for (uint32_t block = 0; block < op_.blocks; ++block) {
      while (block >= op_.blocks_computed + kInputBuffers) sc_core::wait(input_buffer_freed_);
      const Op::Place place = op_.place(block);
      const double start = now_cycles();
      // Requests stay outstanding from block to block: only the first pays the latency.
      auto fetch = [&](const TensorRef& input) {
        const Access access = input_block_access(c, input, place.row, place.col, place.extent);
        const double latency =
            block == 0 ? memories_[static_cast<int>(input.memory)].config->read_latency_cycles : 0;
        return transfer(input.memory, access, access.bytes(), false, index) + latency;
      };
      double end = fetch(c.ifm);
      if (traits(c.kind).second_input) end = std::max(end, fetch(c.ifm2));
      wait_until(end);
      trace_block("input unit", block, start, now_cycles(), index);
      ++op_.inputs_fetched;
      input_fetched_.notify(sc_core::SC_ZERO_TIME);
    }
  }
}

void NpuModel::mac_thread() {
  for (;;) {
    sc_core::wait(op_start_);
    const Command& c = *op_.command;
    const size_t index = op_.index;
    CommandReport& r = row(index);
    const double setup_start = now_cycles();
    wait_cycles(config_.op_setup_cycles);
    r.overhead_cycles += config_.op_setup_cycles;
    trace("mac array", "setup", setup_start, now_cycles(), index);
    const bool weighted = has_weights(c.kind);
    for (uint32_t block = 0; block < op_.blocks; ++block) {
      const Op::Place place = op_.place(block);
      const double input_start = now_cycles();
      while (op_.inputs_fetched <= block) sc_core::wait(input_fetched_);
      r.input_wait_cycles += now_cycles() - input_start;
      trace("mac array", "wait input", input_start, now_cycles(), index);
      if (weighted) {
        const double wait_start = now_cycles();
        while (op_.first_weights_at[block] < 0) sc_core::wait(weights_started_);
        wait_until(op_.first_weights_at[block]);
        r.weight_wait_cycles += now_cycles() - wait_start;
        trace("mac array", "wait weights", wait_start, now_cycles(), index);
      }
      const double start = now_cycles();
      // Edge blocks take as long as full ones: the block's micro-block schedule is fixed
      // per operation (Vela's estimate makes the same assumption; the partial-block timing
      // of the hardware is not public).
      const double cycles = block_compute_cycles(c, op_.shape, config_);
      wait_cycles(cycles);
      r.compute_cycles += cycles;
      if (weighted) {
        // The block's last weights arrive when the decoder finishes it.
        auto& queue = op_.ready[block % static_cast<uint32_t>(op_.engines)];
        const double wait_start = now_cycles();
        while (queue.empty() || queue.front() != block) sc_core::wait(weights_ready_);
        r.weight_wait_cycles += now_cycles() - wait_start;
        trace("mac array", "wait weights", wait_start, now_cycles(), index);
      }
      // Functionally a depth block is computed over the whole output at once, when its
      // first spatial block passes; the timing above is per block.
      if (op_.kernel && report_.error.empty() && place.spatial == 0) {
        op_.kernel->run_block(place.depth_block, op_.weights[place.depth_block].data(),
                              op_.scales[place.depth_block].data());
      }
      trace_block("mac array", block, start, now_cycles(), index);
      if (weighted) {
        op_.ready[block % static_cast<uint32_t>(op_.engines)].pop_front();
        weight_buffer_freed_.notify(sc_core::SC_ZERO_TIME);
      }
      ++op_.blocks_computed;
      input_buffer_freed_.notify(sc_core::SC_ZERO_TIME);
      const double stall_start = now_cycles();
      while (op_.computed.size() >= config_.output_buffers) sc_core::wait(output_buffer_freed_);
      r.output_wait_cycles += now_cycles() - stall_start;
      op_.computed.push_back(block);
      block_computed_.notify(sc_core::SC_ZERO_TIME);
    }
    op_.mac_finished_at = now_cycles();
  }
}

void NpuModel::output_thread() {
  for (;;) {
    sc_core::wait(op_start_);
    const Command& c = *op_.command;
    const size_t index = op_.index;
    CommandReport& r = row(index);
    double last_end = now_cycles();
    for (uint32_t block = 0; block < op_.blocks; ++block) {
      while (op_.computed.empty()) sc_core::wait(block_computed_);
      const Op::Place place = op_.place(block);
      const double start = now_cycles();
      const Access access = output_block_access(c, place.extent, config_);
      const uint64_t bytes = uint64_t{place.extent.h} * place.extent.w * place.extent.d;
      last_end = transfer(c.ofm.memory, access, bytes, true, index);
      wait_until(std::max(last_end, start + block_output_cycles(c, op_.shape, config_)));
      trace_block("output unit", block, start, now_cycles(), index);
      op_.computed.pop_front();
      output_buffer_freed_.notify(sc_core::SC_ZERO_TIME);
    }
    // Writes are posted: the operation ends with its last write's data phase, and the job
    // waits for the acknowledgments at its end. The MAC array's view of this drain is
    // output wait.
    wait_until(std::max(now_cycles(), last_end));
    writes_acknowledged_at_ =
        std::max(writes_acknowledged_at_,
                 last_end + memories_[static_cast<int>(c.ofm.memory)].config->write_latency_cycles);
    r.output_wait_cycles += now_cycles() - op_.mac_finished_at;
    op_done_.notify(sc_core::SC_ZERO_TIME);
  }
}

JobReport NpuModel::run(const CommandStream& stream, const NpuConfig& config,
                        const RunOptions& options) {
  if (const std::string problem = check_consistency(config); !problem.empty()) {
    throw std::invalid_argument("inconsistent NPU configuration: " + problem);
  }
  if (const std::string problem = validate(stream); !problem.empty()) {
    throw std::invalid_argument(problem);
  }
  stream_ = &stream;
  config_ = config;
  options_ = options;
  report_ = JobReport{};
  report_.core_clock_hz = config.core_clock_hz;
  report_.timing_only = options.timing_only;
  report_.commands.resize(stream.commands.size());
  for (size_t i = 0; i < stream.commands.size(); ++i) {
    report_.commands[i].index = i;
    report_.commands[i].kind = stream.commands[i].kind;
  }
  memories_[0].config = &config_.sram;
  memories_[1].config = &config_.offchip;
  // Storage up to the highest byte the job can touch, not the configured size (up to
  // 2^40 bytes): images, outputs and every command's ranges that lie within the memory
  // (a range beyond it stops the job before it is touched). Timing-only jobs keep no data;
  // bounds are still checked against the configured sizes.
  std::array<uint64_t, kMemoryCount> extent{};
  auto cover = [&](MemoryId id, uint64_t address, uint64_t bytes) {
    if (in_bounds(id, address, bytes)) {
      uint64_t& e = extent[static_cast<int>(id)];
      e = std::max(e, address + bytes);
    }
  };
  for (const MemoryImage& image : stream.images)
    cover(image.memory, image.address, image.bytes.size());
  for (const OutputRegion& o : stream.outputs) cover(o.memory, o.address, o.bytes);
  for (const Command& c : stream.commands) {
    for (const CommandRange& r : command_ranges(c)) cover(r.memory, r.address, r.bytes);
  }
  for (size_t id = 0; id < size_t(kMemoryCount); ++id) {
    if (options.timing_only) {
      memories_[id].storage = {};
    } else {
      memories_[id].storage.assign(extent[id], 0);
    }
  }
  for (size_t i = 0; i < stream.images.size(); ++i) {
    const MemoryImage& image = stream.images[i];
    Memory& m = memories_[static_cast<int>(image.memory)];
    if (image.address > m.config->size_bytes ||
        image.bytes.size() > m.config->size_bytes - image.address) {
      throw std::invalid_argument(
          "image " + std::to_string(i) + " (" + std::to_string(image.bytes.size()) + " bytes at " +
          std::to_string(image.address) + ") does not fit " + memory_name(image.memory) + " (" +
          std::to_string(m.config->size_bytes) + " bytes)");
    }
    if (!options.timing_only) {
      std::copy(image.bytes.begin(), image.bytes.end(), m.storage.begin() + image.address);
    }
  }
  if (!started_) {
    // Let every unit run to its first wait; a notification before that would be lost.
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    started_ = true;
  }
  // Jobs start on a whole cycle, so a job's timing never depends on the fractional
  // cycles (rounded to 1 ps) that earlier jobs left behind.
  const double aligned = std::ceil(now_cycles());
  if (aligned > now_cycles()) sc_core::sc_start(sc_time(aligned - now_cycles(), SC_NS));
  job_start_ = now_cycles();
  for (Memory& m : memories_) m.busy.clear();
  job_done_ = false;
  writes_acknowledged_at_ = job_start_;
  job_start_event_.notify(sc_core::SC_ZERO_TIME);
  sc_core::sc_start();
  if (!job_done_) throw std::logic_error("NPU model stopped before the job finished (deadlock)");

  report_.total_cycles = job_cycle();
  for (const CommandReport& r : report_.commands) {
    for (int m = 0; m < kMemoryCount; ++m) {
      report_.traffic[m].read_bytes += r.traffic[m].read_bytes;
      report_.traffic[m].write_bytes += r.traffic[m].write_bytes;
    }
    report_.macs += r.macs;
  }
  if (report_.total_cycles > 0) {
    report_.mac_utilisation =
        static_cast<double>(report_.macs) /
        (report_.total_cycles * static_cast<double>(config_.total_macs_per_cycle()));
  }
  if (!options.timing_only) {
    for (const OutputRegion& o : stream.outputs) {
      const Memory& m = memories_[static_cast<int>(o.memory)];
      if (o.address > m.storage.size() || o.bytes > m.storage.size() - o.address) {
        throw std::invalid_argument("output '" + o.name + "' lies outside " +
                                    memory_name(o.memory));
      }
      report_.outputs.emplace_back(m.storage.begin() + o.address,
                                   m.storage.begin() + o.address + o.bytes);
    }
  }
  stream_ = nullptr;
  return std::move(report_);
}

Simulator& Simulator::instance() {
  static Simulator simulator;
  return simulator;
}

Simulator::Simulator() : model_(new NpuModel("npu")) {
  // Also links sanitizer_fibers.cpp's annotation fix into every program that simulates.
  note_simulation_thread_stack();
}
Simulator::~Simulator() = default;  // SystemC owns the module until the process exits

JobReport Simulator::run(const CommandStream& stream, const NpuConfig& config,
                         const RunOptions& options) {
  return model_->run(stream, config, options);
}

}  // namespace udc::npu_sim
