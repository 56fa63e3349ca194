// Super-resolution data: pairs of high-resolution photographs and their bicubically
// downscaled inputs, the luminance channel super-resolution is measured on, and PSNR.
//
// Two sources: the DIV2K layout (a folder of PNGs), and "sr-photos", natural photographs
// that Debian's opencv-doc package installs with OpenCV's samples (the list below, split
// once into training and test photographs; nothing is downloaded).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "udc/data/dataset.hpp"

namespace udc::data {

/// Pairs of the same photographs: `high` cropped to a multiple of `scale`, `low` its
/// bicubic downscale by `scale`.
struct SuperResolutionSet {
  std::string name;
  uint32_t scale = 2;
  std::vector<std::string> files;  ///< where each pair came from
  std::vector<Image> high, low;    ///< pairs, same index
};

/// DIV2K layout: every PNG/JPEG in `dir` (sorted), as luminance (luma(), channels 1) or
/// RGB (channels 3). `max_images` 0 reads all.
SuperResolutionSet load_div2k(const std::string& dir, uint32_t scale, uint32_t channels,
                              size_t max_images = 0);

/// Where Debian's opencv-doc installs OpenCV's sample images.
constexpr const char* kOpencvSamplesDir = "/usr/share/doc/opencv-doc/examples/data";
/// The photographs of the sr-photos set, by file name in kOpencvSamplesDir: natural
/// photographs of at least 256 pixels a side (no renders, charts, text or calibration
/// boards). Pictures of one scene (stereo and flow pairs, two views of one wall) share a
/// split, so that no test scene is seen in training.
const std::vector<std::string>& sr_photo_files(Split split);
/// The sr-photos set's `split` from `dir` as luminance (luma()) pairs; throws DataError
/// naming a missing file (and the package that installs it).
SuperResolutionSet load_sr_photos(const std::string& dir, Split split, uint32_t scale);

/// Training material from pairs: every `patch` x `patch` window of each low-resolution
/// image at a step of `stride` pixels (both axes, from the top-left; a last window flush
/// with the right and bottom edges when the step does not land there), with the window of
/// its high-resolution image that covers the same scene as target (ImageDataset targets).
/// Pairs in order, so the last windows come from the last photographs. Throws DataError
/// naming a photograph smaller than a patch.
ImageDataset patch_pairs(const SuperResolutionSet& set, uint32_t patch, uint32_t stride);

/// The luminance of an RGB image as super-resolution papers measure it: ITU-R BT.601
/// Y' in studio range, 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded (MATLAB's
/// rgb2ycbcr). A one-channel image is taken as grey (R = G = B).
Image luma(const Image& image);

/// One readable super-resolution set, as `udc eval --data` and configs name it: the
/// folder its Debian package installs (empty: none) and its loader (luminance pairs).
struct SuperResolutionKind {
  const char* name;
  const char* default_dir;
  SuperResolutionSet (*load)(const std::string& dir, Split split, uint32_t scale);
  const char* help;
};
/// Every super-resolution set udc reads: sr-photos, div2k.
const std::vector<SuperResolutionKind>& super_resolution_registry();
std::vector<std::string> super_resolution_names();
/// The entry named `set`, or null when `set` is not a super-resolution set.
const SuperResolutionKind* find_super_resolution_kind(const std::string& set);

/// Peak signal-to-noise ratio of `test` against `reference` [dB] over 8-bit values,
/// leaving out `border` pixels on each side (super-resolution convention: the scale).
/// Same shapes required (std::invalid_argument); identical images give +infinity.
double psnr(const Image& reference, const Image& test, uint32_t border);

}  // namespace udc::data
