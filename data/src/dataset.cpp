#include "udc/data/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "udc/common/file_io.hpp"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

namespace udc::data {
namespace fs = std::filesystem;

const char* split_name(Split split) {
  return split == Split::Train ? "train" : "test";
}

void ImageDataset::truncate(size_t count) {
  if (count == 0 || count >= size()) return;
  labels.resize(count);
  pixels.resize(count * image_bytes());
  targets.resize(count * target_bytes());
  if (!photo_edges.empty()) photo_edges.resize(count);
}

ImageDataset ImageDataset::split_off(size_t count) {
  count = std::min(count, size());
  const size_t kept = size() - count;
  ImageDataset tail;
  tail.name = name + "/held-out";
  tail.height = height;
  tail.width = width;
  tail.channels = channels;
  tail.classes = classes;
  tail.class_names = class_names;
  tail.labels.assign(labels.begin() + std::ptrdiff_t(kept), labels.end());
  tail.pixels.assign(pixels.begin() + std::ptrdiff_t(kept * image_bytes()), pixels.end());
  tail.target_scale = target_scale;
  tail.target_border = target_border;
  if (!photo_edges.empty()) {
    tail.photo_edges.assign(photo_edges.begin() + std::ptrdiff_t(kept), photo_edges.end());
    photo_edges.resize(kept);
  }
  tail.targets.assign(targets.begin() + std::ptrdiff_t(kept * target_bytes()), targets.end());
  labels.resize(kept);
  pixels.resize(kept * image_bytes());
  targets.resize(kept * target_bytes());
  return tail;
}

namespace {

/// Whole content of a file that may be gzip-compressed (zlib reads plain files as they are).
std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw DataError(fmt::format("{}: cannot open", path));
  std::vector<uint8_t> content;
  uint8_t chunk[1 << 16];
  for (;;) {
    const int got = gzread(file, chunk, sizeof chunk);
    if (got < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw DataError(
          fmt::format("{}: offset {}: corrupt gzip data ({})", path, content.size(), message));
    }
    if (got == 0) break;
    content.insert(content.end(), chunk, chunk + got);
  }
  gzclose(file);
  return content;
}

uint32_t big_endian32(const std::vector<uint8_t>& bytes, size_t offset) {
  return uint32_t{bytes[offset]} << 24 | uint32_t{bytes[offset + 1]} << 16 |
         uint32_t{bytes[offset + 2]} << 8 | bytes[offset + 3];
}

/// The file `dir`/`stem` or `dir`/`stem`.gz, whichever exists.
std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const std::string& candidate : {stem + ".gz", stem}) {
    const fs::path path = fs::path(dir) / candidate;
    if (fs::is_regular_file(path)) return path.string();
  }
  throw DataError(
      fmt::format("{}: Fashion-MNIST file {}[.gz] not found (expected the IDX files of the "
                  "dataset-fashion-mnist package, e.g. in {})",
                  dir, stem, kFashionMnistDir));
}

/// An IDX file's dimensions after checking its magic (unsigned bytes, `dims` dimensions)
/// and that its size matches them.
std::vector<uint32_t> idx_dimensions(const std::vector<uint8_t>& bytes, const std::string& path,
                                     uint32_t dims) {
  const uint32_t magic = 0x800u | dims;
  if (bytes.size() < 4 + 4 * size_t{dims} || big_endian32(bytes, 0) != magic) {
    throw DataError(
        fmt::format("{}: offset 0: expected IDX magic 0x{:08x} (unsigned bytes, {} "
                    "dimensions)",
                    path, magic, dims));
  }
  std::vector<uint32_t> shape;
  for (uint32_t d = 0; d < dims; ++d) shape.push_back(big_endian32(bytes, 4 + 4 * size_t{d}));
  // A product of header dimensions may not fit 64 bits (and would then wrap to a count the
  // file matches): checked before it is compared with the file's size.
  size_t elements = 1, expected = 0;
  bool fits = true;
  for (uint32_t d = 0; d < dims && fits; ++d)
    fits = !__builtin_mul_overflow(elements, size_t{shape[d]}, &elements);
  if (!fits || __builtin_add_overflow(elements, 4 + 4 * size_t{dims}, &expected)) {
    throw DataError(fmt::format("{}: offset 4: dimensions {} hold more elements than 64 bits count",
                                path, fmt::join(shape, "x")));
  }
  if (bytes.size() != expected) {
    throw DataError(fmt::format("{}: {} bytes, expected {} for dimensions {}", path, bytes.size(),
                                expected, fmt::join(shape, "x")));
  }
  return shape;
}

}  // namespace

ImageDataset load_fashion_mnist(const std::string& dir, Split split) {
  if (!fs::is_directory(dir)) {
    throw DataError(fmt::format(
        "{}: Fashion-MNIST directory not found (install the dataset-fashion-mnist package, "
        "which puts the IDX files in {})",
        dir, kFashionMnistDir));
  }
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::string images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  return parse_fashion_mnist(read_maybe_gzip(images_path), images_path,
                             read_maybe_gzip(labels_path), labels_path, split);
}

ImageDataset parse_fashion_mnist(const std::vector<uint8_t>& images, const std::string& images_path,
                                 const std::vector<uint8_t>& labels, const std::string& labels_path,
                                 Split split) {
  const std::vector<uint32_t> image_shape = idx_dimensions(images, images_path, 3);
  const std::vector<uint32_t> label_shape = idx_dimensions(labels, labels_path, 1);
  if (image_shape[0] != label_shape[0]) {
    throw DataError(fmt::format("{}: {} labels for {} images in {}", labels_path, label_shape[0],
                                image_shape[0], images_path));
  }
  ImageDataset set;
  set.name = fmt::format("fashion-mnist/{}", split_name(split));
  set.height = image_shape[1];
  set.width = image_shape[2];
  set.channels = 1;
  set.classes = 10;
  set.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  set.pixels.assign(images.begin() + 16, images.end());
  set.labels.reserve(label_shape[0]);
  for (size_t i = 0; i < label_shape[0]; ++i) {
    const uint8_t label = labels[8 + i];
    if (label >= set.classes) {
      throw DataError(
          fmt::format("{}: offset {}: label {} is not a class 0..9", labels_path, 8 + i, label));
    }
    set.labels.push_back(label);
  }
  return set;
}

namespace {

std::vector<std::string> read_name_lines(const fs::path& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

}  // namespace

ImageDataset load_cifar100(const std::string& dir, Split split, bool coarse_labels) {
  constexpr size_t kSide = 32, kPlane = kSide * kSide, kRecord = 2 + 3 * kPlane;
  const fs::path path = fs::path(dir) / (split == Split::Train ? "train.bin" : "test.bin");
  if (!fs::is_regular_file(path)) {
    throw DataError(fmt::format(
        "{}: CIFAR-100 file not found (expected the binary version: train.bin and test.bin "
        "with records of 2 label bytes and 3072 pixel bytes)",
        path.string()));
  }
  const std::vector<uint8_t> bytes = common::read_file(path.string());
  if (bytes.empty() || bytes.size() % kRecord != 0) {
    throw DataError(fmt::format("{}: {} bytes, expected a non-zero multiple of the {}-byte record",
                                path.string(), bytes.size(), kRecord));
  }
  ImageDataset set;
  set.name = fmt::format("cifar100/{}", split_name(split));
  set.height = set.width = kSide;
  set.channels = 3;
  set.classes = coarse_labels ? 20 : 100;
  const size_t count = bytes.size() / kRecord;
  set.pixels.resize(count * kPlane * 3);
  set.labels.resize(count);
  for (size_t r = 0; r < count; ++r) {
    const uint8_t* record = bytes.data() + r * kRecord;
    const uint8_t label = coarse_labels ? record[0] : record[1];
    if (label >= set.classes) {
      throw DataError(fmt::format("{}: offset {}: {} label {} is not a class 0..{}", path.string(),
                                  r * kRecord + (coarse_labels ? 0 : 1),
                                  coarse_labels ? "coarse" : "fine", label, set.classes - 1));
    }
    set.labels[r] = label;
    uint8_t* image = set.pixels.data() + r * kPlane * 3;
    for (size_t p = 0; p < kPlane; ++p) {
      for (size_t c = 0; c < 3; ++c) image[p * 3 + c] = record[2 + c * kPlane + p];
    }
  }
  const fs::path names =
      fs::path(dir) / (coarse_labels ? "coarse_label_names.txt" : "fine_label_names.txt");
  set.class_names = read_name_lines(names);
  if (set.class_names.size() != set.classes) {
    set.class_names.clear();
    for (uint32_t c = 0; c < set.classes; ++c) set.class_names.push_back(std::to_string(c));
  }
  return set;
}

Image read_image(const std::string& path, uint32_t channels) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument(fmt::format("read_image: {} channels, expected 1 or 3", channels));
  }
  int width = 0, height = 0, file_channels = 0;
  uint8_t* pixels = stbi_load(path.c_str(), &width, &height, &file_channels, int(channels));
  if (pixels == nullptr) {
    throw DataError(fmt::format("{}: not a readable PNG or JPEG image ({})", path,
                                stbi_failure_reason() ? stbi_failure_reason() : "unknown"));
  }
  Image image;
  image.height = uint32_t(height);
  image.width = uint32_t(width);
  image.channels = channels;
  image.pixels.assign(pixels, pixels + size_t(width) * size_t(height) * channels);
  stbi_image_free(pixels);
  return image;
}

Image resize_bicubic(const Image& image, uint32_t height, uint32_t width) {
  Image out;
  out.height = height;
  out.width = width;
  out.channels = image.channels;
  out.pixels.resize(size_t{height} * width * image.channels);
  const int ok = stbir_resize_uint8_generic(
      image.pixels.data(), int(image.width), int(image.height), 0, out.pixels.data(), int(width),
      int(height), 0, int(image.channels), STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
      STBIR_FILTER_CATMULLROM, STBIR_COLORSPACE_LINEAR, nullptr);
  if (!ok) throw std::runtime_error("resize_bicubic: resampling failed");
  return out;
}

namespace {

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories) {
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (directories ? entry.is_directory()
                    : (entry.is_regular_file() && is_image_file(entry.path())))
      entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

}  // namespace

ImageDataset load_image_folder(const std::string& dir, Split split, uint32_t side,
                               uint32_t channels) {
  if (side == 0) throw std::invalid_argument("load_image_folder: side must be positive");
  fs::path root(dir);
  if (!fs::is_directory(root)) {
    throw DataError(
        fmt::format("{}: image folder not found (expected one sub-folder per class "
                    "of JPEG/PNG files, optionally under train/ and val/)",
                    dir));
  }
  const fs::path split_dir = root / (split == Split::Train ? "train" : "val");
  if (fs::is_directory(split_dir)) root = split_dir;
  const std::vector<fs::path> class_dirs = sorted_entries(root, true);
  if (class_dirs.empty()) {
    throw DataError(
        fmt::format("{}: no class sub-folders (expected one per class of JPEG/PNG "
                    "files)",
                    root.string()));
  }
  ImageDataset set;
  set.name = fmt::format("{}/{}", root.filename().string(), split_name(split));
  set.height = set.width = side;
  set.channels = channels;
  set.classes = uint32_t(class_dirs.size());
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    set.class_names.push_back(class_dirs[c].filename().string());
    const std::vector<fs::path> files = sorted_entries(class_dirs[c], false);
    if (files.empty()) {
      throw DataError(fmt::format("{}: class folder holds no .jpg, .jpeg or .png file",
                                  class_dirs[c].string()));
    }
    for (const fs::path& file : files) {
      const Image image = read_image(file.string(), channels);
      // Shorter side to `side`, then the centre square.
      const double factor = double(side) / double(std::min(image.height, image.width));
      const uint32_t h = std::max(side, uint32_t(std::lround(image.height * factor)));
      const uint32_t w = std::max(side, uint32_t(std::lround(image.width * factor)));
      const Image scaled = resize_bicubic(image, h, w);
      const uint32_t top = (h - side) / 2, left = (w - side) / 2;
      for (uint32_t y = 0; y < side; ++y) {
        const uint8_t* row = scaled.pixels.data() + (size_t(top + y) * w + left) * channels;
        set.pixels.insert(set.pixels.end(), row, row + size_t{side} * channels);
      }
      set.labels.push_back(uint16_t(c));
    }
  }
  return set;
}

std::vector<std::string> image_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const fs::path& path : sorted_entries(dir, false)) files.push_back(path.string());
  return files;
}

const std::vector<DatasetKind>& dataset_registry() {
  static const std::vector<DatasetKind> kinds{
      {"fashion-mnist", kFashionMnistDir,
       [](const DatasetRequest&, const std::string& dir, Split split) {
         return load_fashion_mnist(dir, split);
       },
       "Fashion-MNIST IDX files (28x28x1, 10 classes)"},
      {"cifar100", "",
       [](const DatasetRequest&, const std::string& dir, Split split) {
         return load_cifar100(dir, split);
       },
       "CIFAR-100 binary version (32x32x3, 100 fine classes)"},
      {"image-folder", "",
       [](const DatasetRequest& request, const std::string& dir, Split split) {
         return load_image_folder(dir, split, request.image_side, request.channels);
       },
       "one folder per class of PNG/JPEG images, resized to image_side"},
  };
  return kinds;
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const DatasetKind& kind : dataset_registry()) names.emplace_back(kind.name);
  return names;
}

const DatasetKind& dataset_kind(const std::string& set) {
  for (const DatasetKind& kind : dataset_registry()) {
    if (set == kind.name) return kind;
  }
  throw DataError(fmt::format("unknown data set '{}' (expected one of: {})", set,
                              fmt::join(dataset_names(), ", ")));
}

ImageDataset load_dataset(const DatasetRequest& request, Split split) {
  const DatasetKind& kind = dataset_kind(request.set);
  const std::string dir = request.dir.empty() ? std::string(kind.default_dir) : request.dir;
  if (dir.empty()) {
    throw DataError(fmt::format("data set '{}' has no default folder: name its dir", kind.name));
  }
  return kind.load(request, dir, split);
}

}  // namespace udc::data
