// Normalisation, augmentation and batched loading of an ImageDataset. Deterministic: the
// order and every augmentation draw of an epoch depend only on (seed, epoch), whatever the
// thread timing, so a resumed run sees the same batches as an uninterrupted one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "udc/data/dataset.hpp"

namespace udc::data {

/// real input = (pixel - mean_level) / (255 * std), mean_level = round(255 * mean). Because
/// mean_level is an integer, the int8 input q = pixel - 128 represents the real input
/// exactly with scale 1 / (255 * std) and zero point mean_level - 128: that is the input
/// quantisation of every exported model (input_scale / input_zero_point).
struct Normalization {
  float mean = 0.5f;  ///< [fraction of full scale], one value for all channels
  float std = 0.5f;   ///< [fraction of full scale], > 0

  int32_t mean_level() const;
  float input_scale() const;
  int32_t input_zero_point() const { return mean_level() - 128; }
  float normalize(uint8_t pixel) const;
};
/// The int8 model input for a pixel (see Normalization).
inline int8_t quantize_pixel(uint8_t pixel) {
  return static_cast<int8_t>(int32_t{pixel} - 128);
}

/// Training-time augmentation; both off at evaluation. A set with targets takes the flip
/// (mirroring image and target together) but not the crop.
struct Augmentation {
  uint32_t crop_padding = 0;     ///< random crop from the image zero-padded by this [pixels]
  bool horizontal_flip = false;  ///< mirror with probability 1/2
};

/// A batch in Torch's NCHW layout, normalised.
struct Batch {
  uint32_t size = 0, channels = 0, height = 0, width = 0;
  /// Images in the global batch this is a share of (data-parallel); `size` otherwise.
  uint32_t global_size = 0;
  std::vector<float> images;      ///< size * channels * height * width
  std::vector<int64_t> labels;    ///< size
  std::vector<uint32_t> indices;  ///< data set indices, size
  /// The images' targets when the set has them (ImageDataset::target_scale, else empty),
  /// normalised like the images: size * channels * (target_scale*height) * (target_scale*width).
  std::vector<float> targets;
  uint32_t target_height = 0, target_width = 0;
  /// 1 for the target pixels that losses and scores count, 0 for those within the target
  /// border (ImageDataset::target_border) of a side that is not a photograph's edge, mirrored
  /// with the image; same layout as `targets`.
  std::vector<float> target_weights;
};

/// One process's share of a global batch in data-parallel training: the images
/// [first, first + count) of it.
struct BatchShare {
  size_t first = 0, count = 0;
};
/// The share of `rank` of `world_size` in a global batch of `batch_size` images: contiguous
/// runs, the first `batch_size % world_size` ranks taking one image more.
BatchShare batch_share(size_t batch_size, uint32_t rank, uint32_t world_size);

/// Fills `batch` with the images `indices` of `data`, augmented with draws from `rng`.
/// With `share`, only those images of the batch: the draws are those of the whole batch, so
/// that the shares of every rank together are the batch one process would make.
void make_batch(const ImageDataset& data, const std::vector<uint32_t>& indices,
                const Normalization& normalization, const Augmentation& augmentation,
                std::mt19937_64& rng, Batch& batch, std::optional<BatchShare> share = std::nullopt);

/// Batches of one epoch, prepared on a worker thread one or two batches ahead of the
/// consumer (the trainer's threads do the arithmetic meanwhile).
class BatchLoader {
 public:
  struct Options {
    size_t batch_size = 128;
    bool shuffle = true;
    bool drop_last = false;  ///< skip a final short batch
    uint64_t seed = 1;
    size_t prefetch = 2;  ///< batches prepared ahead [batches]
    /// Data-parallel: every batch is this rank's share (batch_share) of the global batch
    /// of `batch_size` images that one process would see; batches per epoch are the same.
    uint32_t rank = 0, world_size = 1;
  };
  BatchLoader(const ImageDataset& data, Normalization normalization, Augmentation augmentation,
              Options options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Starts epoch `epoch` (any order; restarting abandons the current one).
  void start_epoch(uint64_t epoch);
  /// The next batch of the epoch; false when the epoch is exhausted.
  bool next(Batch& batch);
  size_t batches_per_epoch() const;

 private:
  void stop_worker();
  void produce(uint64_t epoch);

  const ImageDataset& data_;
  Normalization normalization_;
  Augmentation augmentation_;
  Options options_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  size_t produced_ = 0, consumed_ = 0;
  bool stopping_ = false;
};

}  // namespace udc::data
