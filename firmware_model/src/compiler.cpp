#include "udc/firmware_model/compiler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/npu_sim/timing.hpp"

namespace udc::firmware_model {

const char* weight_placement_name(WeightPlacement placement) {
  switch (placement) {
    case WeightPlacement::Auto:
      return "auto";
    case WeightPlacement::Stream:
      return "stream";
    case WeightPlacement::Prefetch:
      return "prefetch";
  }
  return "unknown";
}

uint64_t weight_tile_bytes(const std::vector<uint64_t>& stream_bytes, uint32_t channels) {
  uint64_t bytes = 0;
  for (uint64_t stream : stream_bytes)
    bytes += (stream + kPlacementAlignment - 1) / kPlacementAlignment * kPlacementAlignment;
  const uint64_t scales = uint64_t{channels} * npu_sim::kScaleRecordBytes;
  return bytes + (scales + kPlacementAlignment - 1) / kPlacementAlignment * kPlacementAlignment;
}

WeightLayout layout_weights(const int8_t* weights, uint32_t channels, uint64_t per_channel,
                            uint32_t block_depth) {
  if (block_depth == 0 || block_depth > channels) block_depth = channels;
  WeightLayout layout;
  std::vector<uint64_t> streams;
  for (uint32_t first = 0; first < channels; first += block_depth) {
    const uint32_t count = std::min(block_depth, channels - first);
    streams.push_back(compression::encoded_size_bytes(weights + first * per_channel,
                                                      size_t(count * per_channel)));
    layout.stream_bytes += streams.back();
  }
  layout.image_bytes = weight_tile_bytes(streams, channels);
  return layout;
}

namespace {

using npu_sim::Command;
using npu_sim::CommandKind;
using npu_sim::MemoryId;
using npu_sim::TensorRef;

/// Prefetch tiles an operation's weights are cut into when the compiler chooses to
/// prefetch (WeightPlacement::Auto).
constexpr uint64_t kAutoTilesPerOperation = 4;

uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// --- Arena planning ---

/// Lifetimes and sizes per tensor; Reshape outputs become aliases of their input's root.
MemoryPlan liveness(const Model& model) {
  MemoryPlan plan;
  const size_t n = model.tensors.size();
  const uint32_t last_step = model.operations.empty() ? 0 : uint32_t(model.operations.size() - 1);
  plan.tensors.resize(n);
  std::vector<bool> defined(n, false);
  for (int32_t t : model.inputs) defined[size_t(t)] = true;
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    TensorPlacement& out = plan.tensors[size_t(op.output)];
    out.first_step = out.last_step = uint32_t(i);
    if (op.type == OpType::Reshape) {
      const int32_t root = plan.tensors[size_t(op.inputs[0])].alias_of;
      out.alias_of = root >= 0 ? root : op.inputs[0];
    }
    for (int32_t t : op.inputs) {
      TensorPlacement& in = plan.tensors[size_t(t)];
      in.last_step = std::max(in.last_step, uint32_t(i));
    }
  }
  for (int32_t t : model.outputs) plan.tensors[size_t(t)].last_step = last_step;
  for (size_t t = 0; t < n; ++t) {
    plan.tensors[t].bytes = model.tensors[t].bytes();
    const int32_t root = plan.tensors[t].alias_of;
    if (root >= 0) {
      TensorPlacement& r = plan.tensors[size_t(root)];
      r.last_step = std::max(r.last_step, plan.tensors[t].last_step);
    }
  }
  return plan;
}

bool overlaps_in_time(const TensorPlacement& a, const TensorPlacement& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

/// One way to place the arena: regions in `order`, each at the lowest free address, or,
/// for every other region when `alternate` is set, at the highest free address below
/// `ceiling` (falling back to the lowest). Returns the arena's end.
uint64_t first_fit(const std::vector<TensorPlacement>& tensors, const std::vector<size_t>& order,
                   bool alternate, uint64_t ceiling, std::vector<uint64_t>& address) {
  std::vector<size_t> placed;
  uint64_t end = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t t = order[k];
    const uint64_t size = align_up(tensors[t].bytes, kPlacementAlignment);
    std::vector<std::pair<uint64_t, uint64_t>> busy;  // [begin, end) of conflicting regions
    for (size_t other : placed) {
      if (overlaps_in_time(tensors[t], tensors[other])) {
        busy.emplace_back(address[other],
                          address[other] + align_up(tensors[other].bytes, kPlacementAlignment));
      }
    }
    std::sort(busy.begin(), busy.end());
    uint64_t lowest = 0;
    for (const auto& [begin, finish] : busy) {
      if (lowest + size <= begin) break;
      lowest = std::max(lowest, finish);
    }
    uint64_t chosen = lowest;
    if (alternate && k % 2 == 1 && size <= ceiling) {
      // Highest aligned start <= ceiling - size clear of every conflicting region.
      uint64_t top = ceiling - size;
      for (auto it = busy.rbegin(); it != busy.rend(); ++it) {
        if (top >= it->second || top + size <= it->first) continue;
        top = it->first >= size ? it->first - size : 0;
        top = top / kPlacementAlignment * kPlacementAlignment;
      }
      bool clear = true;
      for (const auto& [begin, finish] : busy) clear &= top >= finish || top + size <= begin;
      if (clear) chosen = top;
    }
    address[t] = chosen;
    placed.push_back(t);
    end = std::max(end, chosen + size);
  }
  return end;
}

/// Region roots: tensors that are not Reshape aliases.
std::vector<size_t> arena_roots(const MemoryPlan& plan) {
  std::vector<size_t> roots;
  for (size_t t = 0; t < plan.tensors.size(); ++t) {
    if (plan.tensors[t].alias_of < 0) roots.push_back(t);
  }
  return roots;
}

/// Bytes of `roots` live at each step [bytes].
std::vector<uint64_t> live_bytes_of(const MemoryPlan& plan, const std::vector<size_t>& roots,
                                    size_t steps) {
  std::vector<uint64_t> live(std::max<size_t>(steps, 1), 0);
  for (size_t t : roots) {
    const TensorPlacement& p = plan.tensors[t];
    for (uint32_t s = p.first_step; s <= p.last_step && s < live.size(); ++s) {
      live[s] += align_up(p.bytes, kPlacementAlignment);
    }
  }
  return live;
}

/// Places the regions `roots` in one memory so that regions live at the same step never
/// overlap, trying three orders and keeping the smallest arena: largest first (TFLite's
/// planner), in execution order, and in execution order alternating bottom and top below
/// the liveness bound (which meets the bound exactly on chains of layers). Returns the
/// arena's end.
uint64_t place_regions(MemoryPlan& plan, const std::vector<size_t>& roots, bool reuse,
                       size_t steps) {
  if (roots.empty()) return 0;
  const std::vector<uint64_t> live = live_bytes_of(plan, roots, steps);
  const uint64_t bound = *std::max_element(live.begin(), live.end());
  std::vector<uint64_t> best(plan.tensors.size(), 0);
  uint64_t best_end = 0;
  if (!reuse) {
    for (size_t t : roots) {
      best[t] = best_end;
      best_end += align_up(plan.tensors[t].bytes, kPlacementAlignment);
    }
  } else {
    std::vector<size_t> by_size = roots, by_start = roots;
    std::stable_sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) {
      return plan.tensors[a].bytes > plan.tensors[b].bytes;
    });
    std::stable_sort(by_start.begin(), by_start.end(), [&](size_t a, size_t b) {
      return plan.tensors[a].first_step < plan.tensors[b].first_step;
    });
    best_end = UINT64_MAX;
    std::vector<uint64_t> address(plan.tensors.size(), 0);
    const std::pair<const std::vector<size_t>*, bool> strategies[] = {
        {&by_size, false}, {&by_start, false}, {&by_start, true}};
    for (const auto& [order, alternate] : strategies) {
      const uint64_t end = first_fit(plan.tensors, *order, alternate, bound, address);
      if (end < best_end) {
        best_end = end;
        best = address;
      }
    }
  }
  for (size_t t : roots) plan.tensors[t].address = best[t];
  return best_end;
}

/// The activation arena. In SRAM; in the dedicated_sram memory mode the model's inputs and
/// outputs stay in DRAM and the intermediate feature maps are staged in the NPU's SRAM
/// when they fit system.npu_cache_bytes (else they stay in DRAM too).
void plan_arena(const Model& model, MemoryPlan& plan, bool reuse,
                const npu_sim::NpuConfig& config) {
  const size_t steps = model.operations.size();
  const std::vector<size_t> roots = arena_roots(plan);
  plan.live_bytes = live_bytes_of(plan, roots, steps);
  std::vector<size_t> in_sram = roots, offchip;
  if (config.feature_maps_offchip()) {
    std::vector<bool> io(plan.tensors.size(), false);
    for (const std::vector<int32_t>* list : {&model.inputs, &model.outputs}) {
      for (int32_t t : *list) {
        const int32_t root = plan.tensors[size_t(t)].alias_of;
        io[size_t(root >= 0 ? root : t)] = true;
      }
    }
    in_sram.clear();
    for (size_t t : roots) (io[t] ? offchip : in_sram).push_back(t);
    if (place_regions(plan, in_sram, reuse, steps) > config.npu_cache_bytes) {
      offchip = roots;
      in_sram.clear();
    }
  }
  plan.arena_bytes = place_regions(plan, in_sram, reuse, steps);
  plan.offchip_arena_bytes =
      align_up(place_regions(plan, offchip, reuse, steps), kPlacementAlignment);
  for (size_t t : offchip) plan.tensors[t].memory = MemoryId::Offchip;
  for (TensorPlacement& p : plan.tensors) {
    if (p.alias_of < 0) continue;
    p.address = plan.tensors[size_t(p.alias_of)].address;
    p.memory = plan.tensors[size_t(p.alias_of)].memory;
  }
}

// --- Weights ---

/// Output channels the MAC array produces per step: blocks are multiples of it.
uint32_t channel_step(const npu_sim::NpuConfig& config) {
  return config.micro_block.c * config.cores;
}

uint64_t weights_per_channel(const Model& model, const Operation& op) {
  return op.weights.size() / model.tensors[size_t(op.output)].shape[2];
}

struct EncodedBlock {
  uint32_t first_channel = 0, channels = 0;
  std::vector<uint8_t> stream;
  compression::StreamWork work;  ///< what the decoder spends on it (recorded in the command)
};

/// Consecutive blocks that one command (and, when prefetching, one DMA) covers.
struct Tile {
  size_t first_block = 0, end_block = 0;
  uint32_t first_channel = 0, channels = 0;
  uint64_t bytes = 0;  ///< streams and scale records, each aligned [bytes]
};

uint64_t tile_bytes(const std::vector<EncodedBlock>& blocks, size_t first, size_t end) {
  std::vector<uint64_t> streams;
  uint32_t channels = 0;
  for (size_t b = first; b < end; ++b) {
    streams.push_back(blocks[b].stream.size());
    channels += blocks[b].channels;
  }
  return weight_tile_bytes(streams, channels);
}

/// Groups blocks into tiles of at most `limit` bytes (0: one tile).
std::vector<Tile> make_tiles(const std::vector<EncodedBlock>& blocks, uint64_t limit) {
  std::vector<Tile> tiles;
  size_t first = 0;
  while (first < blocks.size()) {
    size_t end = first + 1;
    while (end < blocks.size() && (limit == 0 || tile_bytes(blocks, first, end + 1) <= limit)) {
      ++end;
    }
    Tile tile;
    tile.first_block = first;
    tile.end_block = end;
    tile.first_channel = blocks[first].first_channel;
    for (size_t b = first; b < end; ++b) tile.channels += blocks[b].channels;
    tile.bytes = tile_bytes(blocks, first, end);
    tiles.push_back(tile);
    first = end;
  }
  return tiles;
}

struct OpWeights {
  uint32_t block_depth = 0;
  std::vector<EncodedBlock> blocks;
  uint64_t stream_bytes = 0;
  uint64_t whole_bytes = 0;  ///< as one tile
  uint64_t largest_block_tile = 0;
};

OpWeights encode_operation(const Model& model, const Operation& op, uint32_t block_depth) {
  OpWeights w;
  w.block_depth = block_depth;
  const uint32_t channels = model.tensors[size_t(op.output)].shape[2];
  const uint64_t per_channel = weights_per_channel(model, op);
  for (uint32_t first = 0; first < channels; first += w.block_depth) {
    EncodedBlock block;
    block.first_channel = first;
    block.channels = std::min(w.block_depth, channels - first);
    block.stream = compression::encode_weights(op.weights.data() + first * per_channel,
                                               size_t(block.channels * per_channel));
    block.work = compression::measure_stream_work(block.stream.data(), block.stream.size());
    w.stream_bytes += block.stream.size();
    w.blocks.push_back(std::move(block));
  }
  w.whole_bytes = tile_bytes(w.blocks, 0, w.blocks.size());
  for (size_t b = 0; b < w.blocks.size(); ++b) {
    w.largest_block_tile = std::max(w.largest_block_tile, tile_bytes(w.blocks, b, b + 1));
  }
  return w;
}

/// Appends a tile's streams and scale records to `image` (aligned), and points the
/// command at them, `relocation` being added to every address (prefetch buffers).
void emit_tile_weights(const Operation& op, const OpWeights& w, const Tile& tile,
                       std::vector<uint8_t>& image, uint64_t image_base, Command& c) {
  c.weight_streams.clear();
  for (size_t b = tile.first_block; b < tile.end_block; ++b) {
    image.resize(align_up(image.size(), kPlacementAlignment), 0);
    const std::vector<uint8_t>& s = w.blocks[b].stream;
    const compression::StreamWork& work = w.blocks[b].work;
    c.weight_streams.push_back({image_base + image.size(), uint32_t(s.size()), work.slices,
                                work.symbols(), work.payload_bits});
    image.insert(image.end(), s.begin(), s.end());
  }
  image.resize(align_up(image.size(), kPlacementAlignment), 0);
  c.scale_address = image_base + image.size();
  for (uint32_t ch = tile.first_channel; ch < tile.first_channel + tile.channels; ++ch) {
    uint8_t record[npu_sim::kScaleRecordBytes];
    npu_sim::write_scale_record({op.bias[ch], op.multiplier[ch], op.shift[ch]}, record);
    image.insert(image.end(), record, record + npu_sim::kScaleRecordBytes);
  }
  image.resize(align_up(image.size(), kPlacementAlignment), 0);
}

// --- Commands ---

TensorRef tensor_ref(const Model& model, const MemoryPlan& plan, int32_t tensor) {
  TensorRef r;
  r.memory = plan.tensors[size_t(tensor)].memory;
  r.address = plan.tensors[size_t(tensor)].address;
  r.shape = model.tensors[size_t(tensor)].shape;
  return r;
}

/// The channels [first, first + count) of a tensor, as a strided view.
TensorRef channel_slice(TensorRef whole, uint32_t first, uint32_t count) {
  whole.column_stride = whole.shape[2];
  whole.row_stride = uint64_t{whole.shape[1]} * whole.shape[2];
  whole.address += first;
  whole.shape[2] = count;
  return whole;
}

Command kernel_command(const Model& model, const MemoryPlan& plan, const Operation& op) {
  Command c;
  const TensorInfo& in = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& out = model.tensors[size_t(op.output)];
  c.ifm = tensor_ref(model, plan, op.inputs[0]);
  c.ofm = tensor_ref(model, plan, op.output);
  c.input_zero_point = in.zero_point;
  c.output_zero_point = out.zero_point;
  c.activation_min = op.activation_min;
  c.activation_max = op.activation_max;
  const OpTraits& op_traits = traits(op.type);
  c.kind = op_traits.command;
  if (op_traits.windowed) {
    const WindowAxis y = window_axis(in.shape[0], op.kernel_h, op.stride_h, op.padding);
    const WindowAxis x = window_axis(in.shape[1], op.kernel_w, op.stride_w, op.padding);
    c.kernel_h = op.kernel_h;
    c.kernel_w = op.kernel_w;
    c.stride_h = op.stride_h;
    c.stride_w = op.stride_w;
    c.pad_top = y.pad_before;
    c.pad_bottom = y.pad_after;
    c.pad_left = x.pad_before;
    c.pad_right = x.pad_after;
  }
  if (pools_whole_plane(op.type)) {  // a window over the whole plane
    c.kernel_h = in.shape[0];
    c.kernel_w = in.shape[1];
  }
  if (op.type == OpType::Mean) {
    c.mean_multiplier = op.multiplier[0];
    c.mean_shift = op.shift[0];
  }
  if (npu_sim::traits(c.kind).second_input) {
    c.ifm2 = tensor_ref(model, plan, op.inputs[1]);
    c.input2_zero_point = model.tensors[size_t(op.inputs[1])].zero_point;
    c.add = op.add;
  }
  return c;
}

Command dma_command(uint64_t src, uint64_t dst, uint64_t bytes) {
  Command c;
  c.kind = CommandKind::Dma;
  c.dma_src_memory = MemoryId::Offchip;
  c.dma_src_address = src;
  c.dma_dst_memory = MemoryId::Sram;
  c.dma_dst_address = dst;
  c.dma_bytes = bytes;
  return c;
}

Command wait_command(uint32_t max_pending) {
  Command c;
  c.kind = CommandKind::WaitDma;
  c.max_pending_dma = max_pending;
  return c;
}

/// Depth-to-space as block^2 identity copies (1x1 max pools with the full clamp), each
/// moving one channel group of the input into its strided place in the output.
void emit_depth_to_space(const Model& model, const MemoryPlan& plan, const Operation& op,
                         uint32_t block_depth, std::vector<Command>& commands) {
  const TensorInfo& in = model.tensors[size_t(op.inputs[0])];
  const TensorInfo& out = model.tensors[size_t(op.output)];
  const uint32_t b = op.block_size, depth = out.shape[2];
  for (uint32_t i = 0; i < b; ++i) {
    for (uint32_t j = 0; j < b; ++j) {
      Command c;
      c.kind = CommandKind::MaxPool;
      c.ifm = channel_slice(tensor_ref(model, plan, op.inputs[0]), (i * b + j) * depth, depth);
      c.ofm.memory = plan.tensors[size_t(op.output)].memory;
      c.ofm.address =
          plan.tensors[size_t(op.output)].address + (uint64_t{i} * out.shape[1] + j) * depth;
      c.ofm.shape = {in.shape[0], in.shape[1], depth};
      c.ofm.column_stride = uint64_t{b} * depth;
      c.ofm.row_stride = uint64_t{b} * out.shape[1] * depth;
      c.input_zero_point = c.output_zero_point = in.zero_point;
      c.ofm_block_depth = std::min(block_depth, depth);
      commands.push_back(c);
    }
  }
}

/// Output rows per stripe for a windowed command, or 0 for no striping. The output-block
/// schedule already bounds what the shared buffer holds, so stripes are cut only on request
/// (tests use them to exercise partial inputs).
uint32_t choose_stripe_rows(const Command& c, uint32_t requested) {
  if (!npu_sim::traits(c.kind).windowed || requested == 0) return 0;
  return requested < c.ofm.shape[0] ? requested : 0;
}

/// Appends `c` as stripes of `rows` output rows (all of it when rows is 0), each reading
/// the input rows its window needs, with the padding of the stripe's own edges.
void emit_striped(const Command& c, uint32_t rows, std::vector<Command>& commands) {
  const uint32_t out_rows = c.ofm.shape[0];
  if (rows == 0 || rows >= out_rows) {
    commands.push_back(c);
    return;
  }
  const int64_t in_rows = c.ifm.shape[0];
  for (uint32_t first = 0; first < out_rows; first += rows) {
    const uint32_t count = std::min(rows, out_rows - first);
    const int64_t begin = int64_t{first} * c.stride_h - c.pad_top;
    const int64_t end = int64_t{first + count - 1} * c.stride_h - c.pad_top + c.kernel_h;
    Command s = c;
    s.pad_top = uint32_t(begin < 0 ? -begin : 0);
    s.pad_bottom = uint32_t(end > in_rows ? end - in_rows : 0);
    const int64_t ifm_first = std::max<int64_t>(begin, 0);
    s.ifm.row_stride = c.ifm.row_step();
    s.ifm.column_stride = c.ifm.col_step();
    s.ifm.address += uint64_t(ifm_first) * c.ifm.row_step();
    s.ifm.shape[0] = uint32_t(std::min(end, in_rows) - ifm_first);
    s.ofm.row_stride = c.ofm.row_step();
    s.ofm.column_stride = c.ofm.col_step();
    s.ofm.address += uint64_t{first} * c.ofm.row_step();
    s.ofm.shape[0] = count;
    commands.push_back(s);
  }
}

std::string kib(uint64_t bytes) {
  return fmt::format("{:.1f} KiB", double(bytes) / 1024.0);
}

/// What the compiler works out for each operation on its way to the command stream,
/// indexed by operation. Scratch state of one compile(); the stages below fill it in order.
struct Lowering {
  /// Operation i's kernel command with its output block: the starting point of every
  /// command emitted for it (operations that lower to a command).
  std::vector<Command> shaped;
  std::vector<npu_sim::BlockShape> blocks;  ///< the output block of each operation
  std::vector<OpWeights> weights;           ///< encoded per block depth (weighted operations)
  std::vector<bool> prefetched;             ///< weights DMA'd into SRAM buffers, not streamed
  std::vector<std::vector<Tile>> tiles;     ///< each weighted operation's weight tiles
  /// Each tile's kernel command, its weight addresses where the NPU reads them.
  std::vector<std::vector<Command>> tile_commands;
  std::vector<uint64_t> tile_offsets;  ///< image offset of each prefetched tile, in order
  std::vector<uint64_t> tile_sizes;    ///< its bytes (streams, scales, alignment)
  npu_sim::MemoryImage weight_image;   ///< streams and scale records as laid out
};

/// Operations the NPU cannot run in one command: a global average pool or mean wider than
/// its 64x64 pooling window.
std::optional<DoesNotFit> check_operations(const Model& model) {
  for (const Operation& op : model.operations) {
    if (!pools_whole_plane(op.type)) continue;
    const Shape& s = model.tensors[size_t(op.inputs[0])].shape;
    if (s[0] > 64 || s[1] > 64) {
      return DoesNotFit{"operation", std::max(s[0], s[1]), 64,
                        fmt::format("{}: {} over {}x{}, the NPU's pooling window is at most "
                                    "64x64",
                                    op.name, op_type_name(op.type), s[0], s[1])};
    }
  }
  return std::nullopt;
}

/// Each operation's kernel command and output block (the NPU's schedule); does not fit
/// when even the smallest block overflows the shared buffer.
std::optional<DoesNotFit> shape_operations(const Model& model, const MemoryPlan& plan,
                                           const npu_sim::NpuConfig& config,
                                           const CompileOptions& options, Lowering& lowering) {
  lowering.blocks.assign(model.operations.size(), {});
  lowering.shaped.assign(model.operations.size(), {});
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    if (!traits(op.type).lowers_to_command) continue;
    Command& probe = lowering.shaped[i];
    npu_sim::BlockShape& block = lowering.blocks[i];
    probe = kernel_command(model, plan, op);
    block = npu_sim::choose_ofm_block(probe, config, options.ofm_block_depth);
    probe.ofm_block_depth = block.d;
    probe.ofm_block_height = block.h;
    probe.ofm_block_width = block.w;
    if (!npu_sim::fits_shared_buffer(probe, block, config)) {
      const uint64_t needed = npu_sim::shared_buffer_banks(probe, block, config);
      return DoesNotFit{
          "shared buffer", needed * npu_sim::kSharedBufferBankBytes, config.shared_buffer_bytes,
          fmt::format("{}: even a {}x{}x{} output block needs {} shared-buffer banks of 1 KiB "
                      "(input and accumulators, double-buffered), {} available",
                      op.name, block.h, block.w, block.d, needed,
                      config.shared_buffer_bytes / npu_sim::kSharedBufferBankBytes)};
    }
  }
  return std::nullopt;
}

/// Prefetch (DMA into two SRAM buffers) or stream in place, per weighted operation. Auto
/// weighs the two: the NPU fetches a depth slice's weights again for every spatial block,
/// from flash when streamed and from SRAM when prefetched, where the first tile's DMA is
/// paid up front and the re-reads share the SRAM channel with the activations.
void choose_prefetch(const Model& model, const npu_sim::NpuConfig& config,
                     const CompileOptions& options, Lowering& lowering) {
  lowering.prefetched.assign(model.operations.size(), false);
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    if (!has_weights(op.type) || config.weights_in_sram() ||
        options.weights == WeightPlacement::Stream) {
      continue;
    }
    if (options.weights == WeightPlacement::Auto) {
      const npu_sim::CommandEstimate e = npu_sim::estimate_command(lowering.shaped[i], config);
      if (e.spatial_blocks < 2) continue;  // weights are read once either way
      const double bytes = double(lowering.weights[i].whole_bytes);
      const double refetched = double(e.spatial_blocks) * bytes;
      const double streamed =
          std::max({e.compute, e.sram_traffic,
                    e.offchip_traffic + refetched / config.offchip.bytes_per_cycle});
      const double dma = bytes / config.offchip.bytes_per_cycle;
      const double prefetch =
          dma / kAutoTilesPerOperation +
          std::max({e.compute, e.sram_traffic + (refetched + bytes) / config.sram.bytes_per_cycle,
                    e.offchip_traffic + dma});
      if (prefetch >= streamed) continue;
    }
    lowering.prefetched[i] = true;
  }
}

/// The two prefetch buffers after the arena in SRAM (plan.weight_buffer_*), or streaming
/// for every operation when Auto finds no room for them; does not fit when a requested or
/// forced buffer cannot hold the largest block. Sets out.weights.
std::optional<DoesNotFit> plan_weight_buffers(const npu_sim::NpuConfig& config,
                                              const CompileOptions& options, uint64_t sram_arena,
                                              Lowering& lowering, CompiledModel& out) {
  uint64_t largest_op = 0, largest_block = 0;
  for (size_t i = 0; i < lowering.prefetched.size(); ++i) {
    if (!lowering.prefetched[i]) continue;
    largest_op = std::max(largest_op, lowering.weights[i].whole_bytes);
    largest_block = std::max(largest_block, lowering.weights[i].largest_block_tile);
  }
  const uint64_t free_sram =
      config.sram.size_bytes > sram_arena ? config.sram.size_bytes - sram_arena : 0;
  if (options.weights == WeightPlacement::Auto && free_sram / 2 < largest_block) {
    // No room for two buffers of the largest block: stream in place.
    std::fill(lowering.prefetched.begin(), lowering.prefetched.end(), false);
    largest_op = 0;
  }
  out.weights = WeightPlacement::Stream;
  if (largest_op == 0) return std::nullopt;
  // Auto: buffers of about a quarter of the largest operation's weights, so that the DMA
  // of the next tile overlaps the compute of this one (double buffering).
  const uint64_t wanted = options.weights == WeightPlacement::Auto
                              ? std::max(largest_block, largest_op / kAutoTilesPerOperation)
                              : largest_op;
  uint64_t buffer =
      options.weight_buffer_bytes
          ? options.weight_buffer_bytes
          : std::min(wanted, free_sram / 2 / kPlacementAlignment * kPlacementAlignment);
  buffer = align_up(buffer, kPlacementAlignment);
  if (buffer < largest_block) {
    return DoesNotFit{
        "weight buffer", largest_block, buffer,
        options.weight_buffer_bytes
            ? fmt::format("the requested weight buffer of {} bytes is smaller than the largest "
                          "block's streams and scales ({} bytes)",
                          buffer, largest_block)
            : fmt::format("prefetch needs two weight buffers of at least {} bytes (the largest "
                          "block), but only {} of SRAM are free beside the {} arena",
                          largest_block, kib(free_sram), kib(sram_arena))};
  }
  out.weights = WeightPlacement::Prefetch;
  out.plan.weight_buffer_address = sram_arena;
  out.plan.weight_buffer_bytes = buffer;
  return std::nullopt;
}

/// The weight image, tile by tile in model order (so that DMAs can be issued ahead of
/// their commands), and each tile's kernel command pointing at its weights: in the image
/// when streamed, in its prefetch buffer (alternating) when prefetched.
void lay_out_weights(const Model& model, const MemoryPlan& plan, Lowering& lowering) {
  npu_sim::MemoryImage& image = lowering.weight_image;
  lowering.tiles.assign(model.operations.size(), {});
  lowering.tile_commands.assign(model.operations.size(), {});
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    if (!has_weights(op.type)) continue;
    const bool prefetched = lowering.prefetched[i];
    lowering.tiles[i] =
        make_tiles(lowering.weights[i].blocks, prefetched ? plan.weight_buffer_bytes : 0);
    for (const Tile& tile : lowering.tiles[i]) {
      Command c = lowering.shaped[i];
      if (tile.channels != model.tensors[size_t(op.output)].shape[2]) {
        c.ofm = channel_slice(c.ofm, tile.first_channel, tile.channels);
        if (op.type == OpType::DepthwiseConv2d) {
          c.ifm = channel_slice(c.ifm, tile.first_channel, tile.channels);
        }
      }
      image.bytes.resize(align_up(image.bytes.size(), kPlacementAlignment), 0);
      const uint64_t tile_start = image.bytes.size();
      emit_tile_weights(op, lowering.weights[i], tile, image.bytes, image.address, c);
      c.weight_memory = image.memory;
      if (prefetched) {
        const uint64_t buffer = plan.weight_buffer_address +
                                (lowering.tile_offsets.size() % 2) * plan.weight_buffer_bytes;
        const uint64_t stored_at = image.address + tile_start;
        for (npu_sim::WeightStreamRef& s : c.weight_streams)
          s.address = s.address - stored_at + buffer;
        c.scale_address = c.scale_address - stored_at + buffer;
        c.weight_memory = MemoryId::Sram;
        lowering.tile_offsets.push_back(tile_start);
        lowering.tile_sizes.push_back(image.bytes.size() - tile_start);
      }
      lowering.tile_commands[i].push_back(c);
    }
  }
}

/// The command stream in model order, with each layer's command range. Prefetch keeps the
/// DMA of tile k+2 behind the compute of tile k, which uses the same buffer; tile k+1
/// streams in meanwhile.
void emit_commands(const Model& model, const npu_sim::NpuConfig& config,
                   const CompileOptions& options, const Lowering& lowering, CompiledModel& out) {
  const MemoryPlan& plan = out.plan;
  std::vector<Command>& commands = out.stream.commands;
  const size_t tile_count = lowering.tile_offsets.size();
  size_t next_dma = 0, tile_index = 0;
  auto issue_dma = [&] {
    const uint64_t buffer = plan.weight_buffer_address + (next_dma % 2) * plan.weight_buffer_bytes;
    commands.push_back(dma_command(lowering.weight_image.address + lowering.tile_offsets[next_dma],
                                   buffer, lowering.tile_sizes[next_dma]));
    ++next_dma;
  };
  while (next_dma < std::min<size_t>(2, tile_count)) issue_dma();
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    LayerCommands layer;
    layer.operation = i;
    layer.first_command = commands.size();
    if (has_weights(op.type)) {
      const bool prefetched = lowering.prefetched[i];
      layer.weight_stream_bytes = lowering.weights[i].stream_bytes;
      layer.scale_bytes =
          uint64_t{model.tensors[size_t(op.output)].shape[2]} * npu_sim::kScaleRecordBytes;
      layer.block_depth = lowering.weights[i].block_depth;
      for (const Tile& tile : lowering.tiles[i]) layer.image_bytes += tile.bytes;
      for (const Command& c : lowering.tile_commands[i]) {
        if (prefetched) {
          // The tile's DMA is done when at most the next one is still in flight.
          commands.push_back(wait_command(next_dma > tile_index + 1 ? 1 : 0));
        }
        const size_t before = commands.size();
        emit_striped(c, choose_stripe_rows(c, options.stripe_rows), commands);
        layer.tiles += uint32_t(commands.size() - before);
        if (prefetched) {
          ++tile_index;
          if (next_dma < tile_count) issue_dma();
        }
      }
    } else if (op.type == OpType::DepthToSpace) {
      layer.block_depth = std::min(channel_step(config), model.tensors[size_t(op.output)].shape[2]);
      emit_depth_to_space(model, plan, op, layer.block_depth, commands);
      layer.tiles = op.block_size * op.block_size;
    } else if (op.type != OpType::Reshape) {
      const Command& c = lowering.shaped[i];
      layer.block_depth = c.ofm_block_depth;
      const size_t before = commands.size();
      emit_striped(c, choose_stripe_rows(c, options.stripe_rows), commands);
      layer.tiles = uint32_t(commands.size() - before);
    }
    layer.end_command = commands.size();
    out.layers.push_back(layer);
  }
}

/// SRAM and off-chip totals of the plan, and whether the NPU's memories hold them.
std::optional<DoesNotFit> check_memory_totals(const npu_sim::NpuConfig& config, uint64_t sram_arena,
                                              uint64_t sram_weights_base,
                                              uint64_t weight_image_bytes, MemoryPlan& plan) {
  if (config.weights_in_sram()) {
    plan.sram_weights_bytes = weight_image_bytes;
  } else {
    plan.flash_bytes = weight_image_bytes;
  }
  plan.sram_bytes = sram_weights_base + plan.sram_weights_bytes;
  if (plan.sram_bytes > config.sram.size_bytes) {
    return DoesNotFit{
        "sram", plan.sram_bytes, config.sram.size_bytes,
        fmt::format("needs {} of SRAM ({} activations at peak{}{}), {} available",
                    kib(plan.sram_bytes), kib(sram_arena),
                    plan.weight_buffer_bytes
                        ? fmt::format(" + 2 x {} weight buffers", kib(plan.weight_buffer_bytes))
                        : "",
                    plan.sram_weights_bytes
                        ? fmt::format(" + {} weights", kib(plan.sram_weights_bytes))
                        : "",
                    kib(config.sram.size_bytes))};
  }
  const uint64_t offchip_arena = plan.offchip_arena_bytes;
  if (offchip_arena + plan.flash_bytes > config.offchip.size_bytes) {
    return DoesNotFit{
        "flash", offchip_arena + plan.flash_bytes, config.offchip.size_bytes,
        fmt::format("weights need {} off-chip{}, {} available", kib(plan.flash_bytes),
                    offchip_arena ? fmt::format(" beside the {} arena", kib(offchip_arena)) : "",
                    kib(config.offchip.size_bytes))};
  }
  return std::nullopt;
}

}  // namespace

CompileResult compile(const Model& model, const npu_sim::NpuConfig& config,
                      const CompileOptions& options) {
  const std::string problem = validate(model);
  if (!problem.empty()) throw std::invalid_argument("model " + model.name + ": " + problem);
  CompileResult result;
  CompiledModel& out = result.compiled;
  auto fail = [&](std::optional<DoesNotFit> does_not_fit) {
    result.does_not_fit = std::move(does_not_fit);
    return result.does_not_fit.has_value();
  };
  if (fail(check_operations(model))) return result;

  // 1. The activation arena: in SRAM, or off-chip in the dedicated_sram memory mode.
  out.plan = liveness(model);
  MemoryPlan& plan = out.plan;
  plan_arena(model, plan, options.reuse_memory, config);
  const uint64_t sram_arena = align_up(plan.arena_bytes, kPlacementAlignment);

  // 2. Each operation's output block, then its weights encoded per block depth, then
  // where each operation reads them from.
  Lowering lowering;
  if (fail(shape_operations(model, plan, config, options, lowering))) return result;
  lowering.weights.assign(model.operations.size(), {});
  for (size_t i = 0; i < model.operations.size(); ++i) {
    const Operation& op = model.operations[i];
    if (has_weights(op.type)) {
      lowering.weights[i] = encode_operation(model, op, lowering.blocks[i].d);
    }
  }
  choose_prefetch(model, config, options, lowering);
  if (fail(plan_weight_buffers(config, options, sram_arena, lowering, out))) return result;
  // SRAM: [arena unless off-chip] [two prefetch buffers] [weights in sram_only].
  // Off-chip: [arena in dedicated_sram] [weights otherwise].
  const uint64_t sram_weights_base = sram_arena + 2 * plan.weight_buffer_bytes;
  lowering.weight_image.memory = config.weights_in_sram() ? MemoryId::Sram : MemoryId::Offchip;
  lowering.weight_image.address =
      config.weights_in_sram() ? sram_weights_base : plan.offchip_arena_bytes;

  // 3. The weight image and the commands, in model order.
  lay_out_weights(model, plan, lowering);
  emit_commands(model, config, options, lowering, out);
  if (!lowering.weight_image.bytes.empty()) out.stream.images.push_back(lowering.weight_image);

  // 4. Sizes and what the job reads back.
  if (fail(check_memory_totals(config, sram_arena, sram_weights_base,
                               lowering.weight_image.bytes.size(), plan))) {
    return result;
  }
  std::vector<int32_t> read_back = model.outputs;
  if (!options.reuse_memory) {
    read_back.clear();
    for (size_t t = 0; t < model.tensors.size(); ++t) read_back.push_back(int32_t(t));
  }
  for (int32_t t : read_back) {
    out.stream.outputs.push_back({model.tensors[size_t(t)].name, plan.tensors[size_t(t)].memory,
                                  plan.tensors[size_t(t)].address, plan.tensors[size_t(t)].bytes});
    out.output_tensors.push_back(t);
  }
  const std::string invalid = npu_sim::validate(out.stream);
  if (!invalid.empty()) {
    throw std::logic_error("compiler produced an invalid command stream: " + invalid);
  }
  return result;
}

std::string format_memory_plan(const Model& model, const CompiledModel& compiled) {
  const MemoryPlan& plan = compiled.plan;
  std::string text = fmt::format(
      "SRAM: {} bytes ({}): activation arena {} bytes at peak{}{}\n", plan.sram_bytes,
      kib(plan.sram_bytes), plan.arena_bytes,
      plan.weight_buffer_bytes ? fmt::format(", 2 weight buffers of {} bytes at 0x{:x}",
                                             plan.weight_buffer_bytes, plan.weight_buffer_address)
                               : "",
      plan.sram_weights_bytes ? fmt::format(", {} bytes of weights", plan.sram_weights_bytes) : "");
  text +=
      fmt::format("flash: {} bytes ({}) of weight streams and scale records; weights {}\n",
                  plan.flash_bytes, kib(plan.flash_bytes), weight_placement_name(compiled.weights));
  if (plan.offchip_arena_bytes) {
    text += fmt::format("off-chip activations: {} bytes ({}) before the weights\n",
                        plan.offchip_arena_bytes, kib(plan.offchip_arena_bytes));
  }
  text += fmt::format("{:<4} {:<20} {:<8} {:>10} {:>10} {:>7} {:>11}\n", "#", "tensor", "memory",
                      "address", "bytes", "steps", "live (step)");
  for (size_t t = 0; t < model.tensors.size(); ++t) {
    const TensorPlacement& p = plan.tensors[t];
    text +=
        fmt::format("{:<4} {:<20} {:<8} {:>#10x} {:>10} {:>3}..{:<3}{}\n", t, model.tensors[t].name,
                    npu_sim::memory_name(p.memory), p.address, p.bytes, p.first_step, p.last_step,
                    p.alias_of >= 0 ? fmt::format(" alias of {}", p.alias_of) : "");
  }
  text += "live activation bytes per step:";
  for (size_t s = 0; s < plan.live_bytes.size(); ++s)
    text += fmt::format(" {}", plan.live_bytes[s]);
  text += "\n";
  return text;
}

}  // namespace udc::firmware_model
