#include "udc/data/batch_loader.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace udc::data {

int32_t Normalization::mean_level() const {
  return int32_t(std::lround(255.0 * mean));
}
float Normalization::input_scale() const {
  return float(1.0 / (255.0 * double(std)));
}
float Normalization::normalize(uint8_t pixel) const {
  return float(double(int32_t{pixel} - mean_level()) / (255.0 * double(std)));
}

namespace {

/// One HWC image of `h` x `w` x `c` into NCHW floats at `out` through `lookup`, shifted by
/// (dy, dx) with `padding_value` outside, mirrored first when `flip`.
void write_planes(const uint8_t* image, uint32_t h, uint32_t w, uint32_t c, int32_t dy, int32_t dx,
                  bool flip, const float* lookup, float padding_value, float* out) {
  for (uint32_t y = 0; y < h; ++y) {
    const int32_t sy = int32_t(y) + dy;
    for (uint32_t x = 0; x < w; ++x) {
      const int32_t sx0 = int32_t(flip ? w - 1 - x : x) + dx;
      const bool inside = sy >= 0 && sy < int32_t(h) && sx0 >= 0 && sx0 < int32_t(w);
      for (uint32_t ch = 0; ch < c; ++ch) {
        out[(size_t{ch} * h + y) * w + x] =
            inside ? lookup[image[(size_t(sy) * w + size_t(sx0)) * c + ch]] : padding_value;
      }
    }
  }
}

/// Batch::target_weights of one target: 0 within `border` of a side that is not a
/// photograph's edge (ImageDataset::PhotoEdge bits in `edges`; left and right swap when
/// mirrored), else 1.
void write_target_weights(uint8_t edges, bool flip, uint32_t border, uint32_t h, uint32_t w,
                          uint32_t c, float* out) {
  const bool top = edges & ImageDataset::kTop, bottom = edges & ImageDataset::kBottom;
  bool left = edges & ImageDataset::kLeft, right = edges & ImageDataset::kRight;
  if (flip) std::swap(left, right);
  for (uint32_t y = 0; y < h; ++y) {
    const bool row = (top || y >= border) && (bottom || y + border < h);
    for (uint32_t x = 0; x < w; ++x) {
      const bool counted = row && (left || x >= border) && (right || x + border < w);
      for (uint32_t ch = 0; ch < c; ++ch) out[(size_t{ch} * h + y) * w + x] = counted ? 1.0f : 0.0f;
    }
  }
}

}  // namespace

void make_batch(const ImageDataset& data, const std::vector<uint32_t>& indices,
                const Normalization& normalization, const Augmentation& augmentation,
                std::mt19937_64& rng, Batch& batch, std::optional<BatchShare> share) {
  const uint32_t h = data.height, w = data.width, c = data.channels;
  const size_t first = share ? share->first : 0;
  const size_t count = share ? share->count : indices.size();
  if (first + count > indices.size()) {
    throw std::invalid_argument(data.name + ": batch share beyond the batch");
  }
  if (data.has_targets() && augmentation.crop_padding > 0) {
    throw std::invalid_argument(data.name +
                                ": crop augmentation of images with targets (not supported)");
  }
  batch.size = uint32_t(count);
  batch.global_size = uint32_t(indices.size());
  batch.channels = c;
  batch.height = h;
  batch.width = w;
  batch.images.resize(size_t{batch.size} * c * h * w);
  batch.labels.resize(batch.size);
  batch.indices.assign(indices.begin() + long(first), indices.begin() + long(first + count));
  batch.target_height = h * data.target_scale;
  batch.target_width = w * data.target_scale;
  batch.targets.resize(size_t{batch.size} * c * batch.target_height * batch.target_width);
  batch.target_weights.resize(batch.targets.size());
  // Padding pixels are black (pixel 0), as the zero padding of the usual crop augmentation
  // on raw images.
  const float padding_value = normalization.normalize(0);
  float lookup[256];
  for (int p = 0; p < 256; ++p) lookup[p] = normalization.normalize(uint8_t(p));
  const int32_t pad = int32_t(augmentation.crop_padding);
  for (size_t position = 0; position < first + count; ++position) {
    // Every image of the whole batch draws, in order, whichever share is made.
    int32_t dy = 0, dx = 0;
    bool flip = false;
    if (pad > 0) {
      std::uniform_int_distribution<int32_t> offset(-pad, pad);
      dy = offset(rng);
      dx = offset(rng);
    }
    if (augmentation.horizontal_flip) flip = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    if (position < first) continue;
    const size_t b = position - first;
    batch.labels[b] = data.labels[batch.indices[b]];
    write_planes(data.image(batch.indices[b]), h, w, c, dy, dx, flip, lookup, padding_value,
                 batch.images.data() + size_t{b} * c * h * w);
    if (data.has_targets()) {
      const size_t target_floats = size_t{c} * batch.target_height * batch.target_width;
      write_planes(data.target(batch.indices[b]), batch.target_height, batch.target_width, c, 0, 0,
                   flip, lookup, padding_value, batch.targets.data() + b * target_floats);
      const uint8_t edges = data.photo_edges.empty() ? 0xff : data.photo_edges[batch.indices[b]];
      write_target_weights(edges, flip, data.target_border, batch.target_height, batch.target_width,
                           c, batch.target_weights.data() + b * target_floats);
    }
  }
}

BatchShare batch_share(size_t batch_size, uint32_t rank, uint32_t world_size) {
  const size_t base = batch_size / world_size, extra = batch_size % world_size;
  return {rank * base + std::min<size_t>(rank, extra), base + (rank < extra ? 1 : 0)};
}

BatchLoader::BatchLoader(const ImageDataset& data, Normalization normalization,
                         Augmentation augmentation, Options options)
    : data_(data), normalization_(normalization), augmentation_(augmentation), options_(options) {
  if (options_.batch_size == 0) throw std::invalid_argument("BatchLoader: batch size 0");
  if (options_.world_size == 0 || options_.rank >= options_.world_size) {
    throw std::invalid_argument("BatchLoader: rank beyond the world size");
  }
  options_.prefetch = std::max<size_t>(options_.prefetch, 1);
}

BatchLoader::~BatchLoader() {
  stop_worker();
}

size_t BatchLoader::batches_per_epoch() const {
  const size_t n = data_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void BatchLoader::stop_worker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  ready_.clear();
  produced_ = consumed_ = 0;
}

void BatchLoader::start_epoch(uint64_t epoch) {
  stop_worker();
  worker_ = std::thread([this, epoch] { produce(epoch); });
}

void BatchLoader::produce(uint64_t epoch) {
  std::vector<uint32_t> order(data_.size());
  std::iota(order.begin(), order.end(), 0u);
  // Seed sequence of (seed, epoch): each epoch's order is fixed, whatever came before.
  std::seed_seq order_seed{uint32_t(options_.seed), uint32_t(options_.seed >> 32), uint32_t(epoch),
                           uint32_t(epoch >> 32), 0x5eedu};
  std::mt19937_64 order_rng(order_seed);
  if (options_.shuffle) std::shuffle(order.begin(), order.end(), order_rng);
  const size_t batches = batches_per_epoch();
  for (size_t k = 0; k < batches; ++k) {
    const size_t begin = k * options_.batch_size;
    const size_t end = std::min(order.size(), begin + options_.batch_size);
    std::vector<uint32_t> indices(order.begin() + long(begin), order.begin() + long(end));
    std::seed_seq batch_seed{uint32_t(options_.seed), uint32_t(epoch), uint32_t(k), 0xa09u};
    std::mt19937_64 rng(batch_seed);
    Batch batch;
    std::optional<BatchShare> share;
    if (options_.world_size > 1) {
      share = batch_share(indices.size(), options_.rank, options_.world_size);
    }
    make_batch(data_, indices, normalization_, augmentation_, rng, batch, share);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || ready_.size() < options_.prefetch; });
    if (stopping_) return;
    ready_.push_back(std::move(batch));
    ++produced_;
    changed_.notify_all();
  }
}

bool BatchLoader::next(Batch& batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!worker_.joinable() || consumed_ == batches_per_epoch()) return false;
  changed_.wait(lock, [&] { return !ready_.empty(); });
  batch = std::move(ready_.front());
  ready_.pop_front();
  ++consumed_;
  changed_.notify_all();
  return true;
}

}  // namespace udc::data
