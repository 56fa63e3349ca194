// Image data sets for training and evaluation, read by real loaders from the files their
// publishers ship (DESIGN.md section 7). No Torch: the loaders, augmentation and batching
// are plain C++ so that `udc eval` and the tests run without LibTorch's start-up cost.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace udc::data {

/// A data set that is missing, unreadable or not in the expected format. The message names
/// the file (and offset or entry) and what was expected.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Split { Train, Test };
const char* split_name(Split split);

/// 8-bit images of one size, stored HWC per image, images back to back, each with what a
/// network should make of it: a label (classification) or a target image (super-resolution).
struct ImageDataset {
  std::string name;  ///< e.g. "fashion-mnist/test", for messages and reports
  uint32_t height = 0, width = 0, channels = 0;  ///< [pixels], [pixels], [1 or 3]
  uint32_t classes = 0;
  std::vector<std::string> class_names;  ///< classes entries
  std::vector<uint8_t> pixels;           ///< size() * image_bytes()
  std::vector<uint16_t> labels;          ///< size() entries, each < classes (targets: all 0)
  /// Super-resolution: each image's target, the same scene target_scale times larger
  /// (target_scale*height x target_scale*width x channels, HWC), back to back; 0 and empty
  /// for classification.
  uint32_t target_scale = 0;
  std::vector<uint8_t> targets;
  /// Target pixels on each side that losses and scores leave out, except on the sides that
  /// are the photograph's own edges: there a network that runs on the patch reads padding
  /// (0) that it does not read inside a whole photograph, whose tiles' edges are discarded
  /// (firmware_model::upscale_image).
  uint32_t target_border = 0;
  /// Per image with targets: the sides that are the photograph's edges (PhotoEdge bits).
  std::vector<uint8_t> photo_edges;
  enum PhotoEdge : uint8_t { kTop = 1, kBottom = 2, kLeft = 4, kRight = 8 };

  size_t size() const { return labels.size(); }
  size_t image_bytes() const { return size_t{height} * width * channels; }
  const uint8_t* image(size_t index) const { return pixels.data() + index * image_bytes(); }
  bool has_targets() const { return target_scale > 0; }
  size_t target_bytes() const { return image_bytes() * target_scale * target_scale; }
  const uint8_t* target(size_t index) const { return targets.data() + index * target_bytes(); }
  /// Keeps the first `count` images (all if count is 0 or larger than the set).
  void truncate(size_t count);
  /// Moves the last `count` images (at most all) into the returned set, named
  /// `name` + "/held-out"; this set keeps the others.
  ImageDataset split_off(size_t count);
};

/// Fashion-MNIST from its IDX files (gzip-compressed or not) in `dir`:
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. 28x28x1, 10 classes.
ImageDataset load_fashion_mnist(const std::string& dir, Split split);
/// The same from the bytes of the (decompressed) IDX files; errors name the paths.
ImageDataset parse_fashion_mnist(const std::vector<uint8_t>& images, const std::string& images_path,
                                 const std::vector<uint8_t>& labels, const std::string& labels_path,
                                 Split split);
/// The directory Debian's dataset-fashion-mnist package installs.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// CIFAR-100, binary version: `dir`/{train,test}.bin, records of 1 coarse label byte, 1 fine
/// label byte and 3,072 channel-planar pixel bytes (32x32, R then G then B). Labels are the
/// 100 fine classes, or the 20 coarse ones when `coarse_labels`. Class names come from
/// fine_label_names.txt / coarse_label_names.txt when present.
ImageDataset load_cifar100(const std::string& dir, Split split, bool coarse_labels = false);

/// ImageNet-style folder: `dir`/<split>/<class>/*.{jpg,jpeg,png} when `dir`/train or
/// `dir`/val (test split) exists, else `dir`/<class>/...; classes sorted by name. Each image
/// is scaled so that its shorter side is `side`, centre-cropped to side x side and converted
/// to `channels` (1 or 3).
ImageDataset load_image_folder(const std::string& dir, Split split, uint32_t side,
                               uint32_t channels);

/// Which labelled image set to read, as configs and the CLI name it.
struct DatasetRequest {
  std::string set = "fashion-mnist";  ///< a name of dataset_registry()
  std::string dir;                    ///< empty: the set's default folder (if it has one)
  uint32_t image_side = 32;           ///< image-folder: images resized to side x side [pixels]
  uint32_t channels = 3;              ///< image-folder: 1 or 3
};

/// One readable image-classification set: its name, the folder its Debian package
/// installs (empty: none, a folder must be named) and its loader.
struct DatasetKind {
  const char* name;
  const char* default_dir;
  ImageDataset (*load)(const DatasetRequest& request, const std::string& dir, Split split);
  const char* help;
};
/// Every set udc can read, in the order shown in help and errors. Adding a set is one
/// entry here (dataset.cpp) and its loader.
const std::vector<DatasetKind>& dataset_registry();
/// The registry's names, for CLI checks and config choices.
std::vector<std::string> dataset_names();
/// The registry's entry for `set`; throws DataError listing the known names.
const DatasetKind& dataset_kind(const std::string& set);
/// Reads a split of the requested set (`dir`, else the set's default folder); throws
/// DataError when the set is unknown, no folder is known, or the files are bad.
ImageDataset load_dataset(const DatasetRequest& request, Split split);

/// One 8-bit image, HWC.
struct Image {
  uint32_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;
};
/// Reads a PNG or JPEG file as `channels` (1 or 3) channels; throws DataError naming it.
Image read_image(const std::string& path, uint32_t channels);
/// Bicubic (Catmull-Rom, as MATLAB's imresize) resampling to height x width.
Image resize_bicubic(const Image& image, uint32_t height, uint32_t width);

/// The PNG and JPEG files directly in `dir`, sorted by path.
std::vector<std::string> image_files(const std::string& dir);

}  // namespace udc::data
