#include "udc/data/super_resolution.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

namespace udc::data {
namespace fs = std::filesystem;

namespace {

/// `high` cropped to a multiple of `scale` (top-left kept) and its bicubic downscale.
void add_pair(SuperResolutionSet& set, Image high, const std::string& file) {
  const uint32_t scale = set.scale;
  const uint32_t h = high.height / scale * scale, w = high.width / scale * scale;
  if (h == 0 || w == 0) {
    throw DataError(fmt::format("{}: {}x{} image is smaller than the scale {}", file, high.width,
                                high.height, scale));
  }
  if (h != high.height || w != high.width) {
    Image cropped{h, w, high.channels, {}};
    for (uint32_t y = 0; y < h; ++y) {
      const uint8_t* row = high.pixels.data() + size_t{y} * high.width * high.channels;
      cropped.pixels.insert(cropped.pixels.end(), row, row + size_t{w} * high.channels);
    }
    high = std::move(cropped);
  }
  set.low.push_back(resize_bicubic(high, h / scale, w / scale));
  set.high.push_back(std::move(high));
  set.files.push_back(file);
}

/// A photograph as pair material: luminance (channels 1) or RGB (channels 3).
Image read_for_pairs(const std::string& file, uint32_t channels) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument(fmt::format("{} channels, expected 1 or 3", channels));
  }
  Image rgb = read_image(file, 3);
  return channels == 1 ? luma(rgb) : rgb;
}

void check_scale(uint32_t scale, const char* what) {
  if (scale < 2 || scale > 4) {
    throw std::invalid_argument(fmt::format("{}: scale {}, expected 2, 3 or 4", what, scale));
  }
}

}  // namespace

SuperResolutionSet load_div2k(const std::string& dir, uint32_t scale, uint32_t channels,
                              size_t max_images) {
  check_scale(scale, "load_div2k");
  if (!fs::is_directory(dir)) {
    throw DataError(
        fmt::format("{}: DIV2K folder not found (expected high-resolution PNG files, "
                    "e.g. DIV2K_train_HR)",
                    dir));
  }
  std::vector<std::string> files = image_files(dir);
  if (files.empty()) throw DataError(fmt::format("{}: no PNG or JPEG files", dir));
  if (max_images != 0 && files.size() > max_images) files.resize(max_images);
  SuperResolutionSet set;
  set.name = fs::path(dir).filename().string();
  set.scale = scale;
  for (const std::string& file : files) add_pair(set, read_for_pairs(file, channels), file);
  return set;
}

const std::vector<std::string>& sr_photo_files(Split split) {
  // Classic test photographs stay out of training: baboon (Set14), butterfly (Set5).
  static const std::vector<std::string> test{"baboon.jpg", "building.jpg", "butterfly.jpg",
                                             "fruits.jpg", "smarties.png"};
  static const std::vector<std::string> train{
      "aero1.jpg",        "aero3.jpg",        "aloeL.jpg",  "aloeR.jpg",        "apple.jpg",
      "basketball1.png",  "basketball2.png",  "board.jpg",  "box_in_scene.png", "chicky_512.png",
      "ela_original.jpg", "graf1.png",        "graf3.png",  "home.jpg",         "leuvenA.jpg",
      "leuvenB.jpg",      "messi5.jpg",       "orange.jpg", "pca_test1.jpg",    "rubberwhale1.png",
      "rubberwhale2.png", "squirrel_cls.jpg", "stuff.jpg"};
  return split == Split::Train ? train : test;
}

SuperResolutionSet load_sr_photos(const std::string& dir, Split split, uint32_t scale) {
  check_scale(scale, "load_sr_photos");
  SuperResolutionSet set;
  set.name = fmt::format("sr-photos/{}", split_name(split));
  set.scale = scale;
  for (const std::string& name : sr_photo_files(split)) {
    const std::string file = (fs::path(dir) / name).string();
    if (!fs::is_regular_file(file)) {
      throw DataError(
          fmt::format("{}: missing (the sr-photos set is OpenCV's sample photographs, installed by "
                      "Debian's opencv-doc package)",
                      file));
    }
    add_pair(set, read_for_pairs(file, 1), file);
  }
  return set;
}

const std::vector<SuperResolutionKind>& super_resolution_registry() {
  static const std::vector<SuperResolutionKind> kinds{
      {"sr-photos", kOpencvSamplesDir, load_sr_photos,
       "OpenCV's sample photographs from Debian's opencv-doc (23 training, 5 test)"},
      {"div2k", "",
       [](const std::string& dir, Split split, uint32_t scale) {
         // DIV2K's own folders when present, else `dir` holds the photographs.
         const fs::path sub =
             fs::path(dir) / (split == Split::Train ? "DIV2K_train_HR" : "DIV2K_valid_HR");
         return load_div2k(fs::is_directory(sub) ? sub.string() : dir, scale, 1);
       },
       "DIV2K high-resolution PNGs (DIV2K_train_HR and DIV2K_valid_HR under the folder)"},
  };
  return kinds;
}

std::vector<std::string> super_resolution_names() {
  std::vector<std::string> names;
  for (const SuperResolutionKind& kind : super_resolution_registry()) names.emplace_back(kind.name);
  return names;
}

const SuperResolutionKind* find_super_resolution_kind(const std::string& set) {
  for (const SuperResolutionKind& kind : super_resolution_registry()) {
    if (set == kind.name) return &kind;
  }
  return nullptr;
}

ImageDataset patch_pairs(const SuperResolutionSet& set, uint32_t patch, uint32_t stride) {
  if (patch == 0 || stride == 0) {
    throw std::invalid_argument(fmt::format("patch_pairs: patch {}, stride {}", patch, stride));
  }
  ImageDataset patches;
  patches.name = fmt::format("{} ({}x{} patches)", set.name, patch, patch);
  patches.height = patches.width = patch;
  patches.channels = set.low.empty() ? 1 : set.low.front().channels;
  patches.target_scale = set.scale;
  const uint32_t s = set.scale, c = patches.channels;
  // Window origins along an axis of `extent` pixels: every `stride`, and one flush with the end.
  const auto origins = [&](uint32_t extent) {
    std::vector<uint32_t> at;
    for (uint32_t o = 0; o + patch <= extent; o += stride) at.push_back(o);
    if (at.back() + patch < extent) at.push_back(extent - patch);
    return at;
  };
  for (size_t i = 0; i < set.low.size(); ++i) {
    const Image& low = set.low[i];
    const Image& high = set.high[i];
    if (low.height < patch || low.width < patch) {
      throw DataError(fmt::format("{}: {}x{} at the low resolution, smaller than a {}x{} patch",
                                  set.files.at(i), low.width, low.height, patch, patch));
    }
    for (uint32_t y0 : origins(low.height)) {
      for (uint32_t x0 : origins(low.width)) {
        patches.photo_edges.push_back(
            uint8_t((y0 == 0 ? ImageDataset::kTop : 0) |
                    (y0 + patch == low.height ? ImageDataset::kBottom : 0) |
                    (x0 == 0 ? ImageDataset::kLeft : 0) |
                    (x0 + patch == low.width ? ImageDataset::kRight : 0)));
        for (uint32_t y = 0; y < patch; ++y) {
          const uint8_t* row = low.pixels.data() + (size_t{y0 + y} * low.width + x0) * c;
          patches.pixels.insert(patches.pixels.end(), row, row + size_t{patch} * c);
        }
        for (uint32_t y = 0; y < patch * s; ++y) {
          const uint8_t* row =
              high.pixels.data() + (size_t{y0 * s + y} * high.width + size_t{x0} * s) * c;
          patches.targets.insert(patches.targets.end(), row, row + size_t{patch} * s * c);
        }
        patches.labels.push_back(0);
      }
    }
  }
  return patches;
}

Image luma(const Image& image) {
  if (image.channels != 1 && image.channels != 3) {
    throw std::invalid_argument(fmt::format("luma: {} channels, expected 1 or 3", image.channels));
  }
  Image y{image.height, image.width, 1, {}};
  y.pixels.resize(size_t{image.height} * image.width);
  for (size_t i = 0; i < y.pixels.size(); ++i) {
    const uint8_t* p = image.pixels.data() + i * image.channels;
    const double r = p[0], g = p[image.channels == 3 ? 1 : 0], b = p[image.channels == 3 ? 2 : 0];
    y.pixels[i] = uint8_t(std::lround(16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0));
  }
  return y;
}

double psnr(const Image& reference, const Image& test, uint32_t border) {
  if (reference.height != test.height || reference.width != test.width ||
      reference.channels != test.channels) {
    throw std::invalid_argument(fmt::format("psnr: {}x{}x{} against {}x{}x{}", reference.height,
                                            reference.width, reference.channels, test.height,
                                            test.width, test.channels));
  }
  if (2 * border >= reference.height || 2 * border >= reference.width) {
    throw std::invalid_argument(fmt::format("psnr: border {} leaves nothing of {}x{}", border,
                                            reference.height, reference.width));
  }
  double squared = 0;
  size_t count = 0;
  const uint32_t c = reference.channels;
  for (uint32_t y = border; y < reference.height - border; ++y) {
    for (uint32_t x = border; x < reference.width - border; ++x) {
      for (uint32_t k = 0; k < c; ++k) {
        const size_t i = (size_t{y} * reference.width + x) * c + k;
        const double d = double(reference.pixels[i]) - double(test.pixels[i]);
        squared += d * d;
        ++count;
      }
    }
  }
  if (squared == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / (squared / double(count)));
}

}  // namespace udc::data
