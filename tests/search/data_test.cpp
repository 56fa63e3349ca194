// Data loaders, augmentation and batching, on small files the tests write (and on the real
// Fashion-MNIST test set when the Debian package is installed).
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <set>

#include <stb/stb_image_write.h>

#include "udc/data/batch_loader.hpp"
#include "udc/data/dataset.hpp"
#include "udc/data/super_resolution.hpp"

namespace fs = std::filesystem;
using namespace udc::data;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("udc_data_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
}

/// IDX files of `count` 28x28 images whose pixel (y, x) of image i is (i * 7 + y * 28 + x) % 256.
void write_idx(const fs::path& dir, const std::string& prefix, uint32_t count, bool gzip,
               uint8_t bad_label = 0) {
  std::vector<uint8_t> images, labels;
  put32(images, 0x803);
  put32(images, count);
  put32(images, 28);
  put32(images, 28);
  for (uint32_t i = 0; i < count; ++i) {
    for (uint32_t p = 0; p < 28 * 28; ++p) images.push_back(uint8_t((i * 7 + p) % 256));
  }
  put32(labels, 0x801);
  put32(labels, count);
  for (uint32_t i = 0; i < count; ++i) labels.push_back(uint8_t(i % 10));
  if (bad_label) labels.back() = bad_label;
  const std::string ext = gzip ? ".gz" : "";
  write_bytes(dir / (prefix + "-images-idx3-ubyte" + ext), images, gzip);
  write_bytes(dir / (prefix + "-labels-idx1-ubyte" + ext), labels, gzip);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(FashionMnist, ReadsGzipAndPlainIdx) {
  for (bool gzip : {true, false}) {
    const fs::path dir = fresh_dir(gzip ? "idxgz" : "idx");
    write_idx(dir, "t10k", 13, gzip);
    const ImageDataset set = load_fashion_mnist(dir.string(), Split::Test);
    ASSERT_EQ(set.size(), 13u);
    EXPECT_EQ(set.height, 28u);
    EXPECT_EQ(set.channels, 1u);
    EXPECT_EQ(set.classes, 10u);
    for (uint32_t i = 0; i < 13; ++i) {
      EXPECT_EQ(set.labels[i], i % 10);
      EXPECT_EQ(set.image(i)[0], uint8_t(i * 7 % 256));
      EXPECT_EQ(set.image(i)[5 * 28 + 3], uint8_t((i * 7 + 143) % 256));
    }
    fs::remove_all(dir);
  }
}

TEST(FashionMnist, ErrorsNameFileAndExpectation) {
  const fs::path dir = fresh_dir("idxbad");
  EXPECT_NE(error_of([&] {
              load_fashion_mnist((dir / "nope").string(), Split::Test);
            }).find("dataset-fashion-mnist"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_fashion_mnist(dir.string(), Split::Train);
            }).find("train-images-idx3-ubyte"),
            std::string::npos);
  write_idx(dir, "t10k", 4, true, /*bad_label=*/12);
  const std::string label_error = error_of([&] { load_fashion_mnist(dir.string(), Split::Test); });
  EXPECT_NE(label_error.find("offset 11: label 12"), std::string::npos) << label_error;
  // Truncated image file, then a wrong magic number.
  std::vector<uint8_t> short_images;
  put32(short_images, 0x803);
  put32(short_images, 4);
  put32(short_images, 28);
  put32(short_images, 28);
  short_images.resize(100);
  write_bytes(dir / "t10k-images-idx3-ubyte.gz", short_images, true);
  EXPECT_NE(error_of([&] { load_fashion_mnist(dir.string(), Split::Test); }).find("expected 3152"),
            std::string::npos);
  // Dimensions whose product wraps 64 bits to 0 elements, which the header-only file
  // would then match: refused before the product is trusted.
  std::vector<uint8_t> wrapping;
  put32(wrapping, 0x803);
  put32(wrapping, 0x80000000u);
  put32(wrapping, 0x80000000u);
  put32(wrapping, 4);
  write_bytes(dir / "t10k-images-idx3-ubyte.gz", wrapping, true);
  const std::string wrap_error = error_of([&] { load_fashion_mnist(dir.string(), Split::Test); });
  EXPECT_NE(wrap_error.find(
                "offset 4: dimensions 2147483648x2147483648x4 hold more elements than 64 bits"),
            std::string::npos)
      << wrap_error;
  write_bytes(dir / "t10k-images-idx3-ubyte.gz", short_images, true);
  short_images[3] = 0x01;
  write_bytes(dir / "t10k-images-idx3-ubyte.gz", short_images, true);
  EXPECT_NE(error_of([&] {
              load_fashion_mnist(dir.string(), Split::Test);
            }).find("offset 0: expected IDX magic 0x00000803"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(FashionMnist, DebianPackageTestSet) {
  ASSERT_TRUE(fs::is_directory(kFashionMnistDir))
      << kFashionMnistDir << ": no Fashion-MNIST; ./setup.sh installs dataset-fashion-mnist";
  const ImageDataset set = load_fashion_mnist(kFashionMnistDir, Split::Test);
  ASSERT_EQ(set.size(), 10000u);
  // The published test set is balanced: 1,000 images per class.
  std::vector<int> per_class(10, 0);
  for (uint16_t label : set.labels) ++per_class[label];
  for (int count : per_class) EXPECT_EQ(count, 1000);
}

// The registry dispatches by name to the same loaders, with the set's default folder.
TEST(DatasetRegistry, NamesDispatchToTheLoaders) {
  EXPECT_EQ(dataset_names(),
            (std::vector<std::string>{"fashion-mnist", "cifar100", "image-folder"}));
  const ImageDataset by_name = load_dataset(DatasetRequest{}, Split::Test);
  EXPECT_EQ(by_name.labels, load_fashion_mnist(kFashionMnistDir, Split::Test).labels);
  const std::string unknown = error_of([] { load_dataset({"mnist", "", 32, 3}, Split::Test); });
  EXPECT_NE(unknown.find("unknown data set 'mnist'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("fashion-mnist, cifar100, image-folder"), std::string::npos) << unknown;
  const std::string no_dir = error_of([] { load_dataset({"cifar100", "", 32, 3}, Split::Test); });
  EXPECT_NE(no_dir.find("no default folder"), std::string::npos) << no_dir;
}

TEST(ImageDataset, SplitOffMovesTheLastImages) {
  ImageDataset set;
  set.name = "toy";
  set.height = set.width = 2;
  set.channels = 1;
  set.classes = 3;
  for (uint16_t i = 0; i < 5; ++i) {
    set.labels.push_back(uint16_t(i % 3));
    for (int p = 0; p < 4; ++p) set.pixels.push_back(uint8_t(10 * i + p));
  }
  const ImageDataset tail = set.split_off(2);
  ASSERT_EQ(set.size(), 3u);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail.name, "toy/held-out");
  EXPECT_EQ(tail.classes, 3u);
  EXPECT_EQ(tail.labels, (std::vector<uint16_t>{0, 1}));  // images 3 and 4
  EXPECT_EQ(tail.image(1)[0], 40);
  EXPECT_EQ(set.pixels.size(), 12u);
  EXPECT_EQ(set.image(2)[3], 23);
  EXPECT_EQ(set.split_off(10).size(), 3u);  // at most all
  EXPECT_EQ(set.size(), 0u);
}

TEST(Cifar100, PlanarRecordsBecomeHwcImages) {
  const fs::path dir = fresh_dir("cifar");
  std::vector<uint8_t> bytes;
  for (int r = 0; r < 3; ++r) {
    bytes.push_back(uint8_t(r + 1));   // coarse
    bytes.push_back(uint8_t(50 + r));  // fine
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) bytes.push_back(uint8_t((r * 31 + c * 100 + p) % 256));
    }
  }
  write_bytes(dir / "test.bin", bytes, false);
  const ImageDataset fine = load_cifar100(dir.string(), Split::Test);
  ASSERT_EQ(fine.size(), 3u);
  EXPECT_EQ(fine.classes, 100u);
  EXPECT_EQ(fine.labels[2], 52);
  // Pixel (y=3, x=5) of record 1, channel G: planar offset 1024 + 3*32 + 5.
  EXPECT_EQ(fine.image(1)[(3 * 32 + 5) * 3 + 1], uint8_t((31 + 100 + 101) % 256));
  const ImageDataset coarse = load_cifar100(dir.string(), Split::Test, true);
  EXPECT_EQ(coarse.classes, 20u);
  EXPECT_EQ(coarse.labels[0], 1);
  bytes.pop_back();
  write_bytes(dir / "test.bin", bytes, false);
  EXPECT_NE(error_of([&] { load_cifar100(dir.string(), Split::Test); }).find("3074-byte record"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_cifar100(dir.string(), Split::Train); }).find("train.bin"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(ImageFolder, ClassFoldersOfPngAndJpeg) {
  const fs::path dir = fresh_dir("folder");
  const std::vector<std::array<uint8_t, 3>> colours{{200, 40, 10}, {20, 220, 90}};
  const char* classes[] = {"b_second", "a_first"};
  for (int k = 0; k < 2; ++k) {
    const fs::path class_dir = dir / "val" / classes[k];
    fs::create_directories(class_dir);
    // A uniform image of 40x24 in each format: resizing keeps a constant colour.
    std::vector<uint8_t> pixels;
    for (int p = 0; p < 40 * 24; ++p)
      pixels.insert(pixels.end(), colours[size_t(k)].begin(), colours[size_t(k)].end());
    ASSERT_TRUE(stbi_write_png((class_dir / "one.png").c_str(), 40, 24, 3, pixels.data(), 40 * 3));
    ASSERT_TRUE(stbi_write_jpg((class_dir / "two.JPG").c_str(), 40, 24, 3, pixels.data(), 95));
  }
  const ImageDataset set = load_image_folder(dir.string(), Split::Test, 16, 3);
  ASSERT_EQ(set.size(), 4u);
  EXPECT_EQ(set.classes, 2u);
  EXPECT_EQ(set.class_names[0], "a_first");
  EXPECT_EQ(set.height, 16u);
  for (size_t i = 0; i < set.size(); ++i) {
    const auto& colour = colours[set.labels[i] == 0 ? 1 : 0];
    for (size_t p = 0; p < 16 * 16; ++p) {
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(set.image(i)[p * 3 + size_t(c)], colour[size_t(c)], 3);
    }
  }
  const ImageDataset grey = load_image_folder(dir.string(), Split::Test, 8, 1);
  EXPECT_EQ(grey.channels, 1u);
  EXPECT_NE(error_of([&] {
              load_image_folder((dir / "none").string(), Split::Test, 8, 3);
            }).find("one sub-folder per class"),
            std::string::npos);
  std::ofstream(dir / "val" / "a_first" / "broken.png") << "not a png";
  EXPECT_NE(
      error_of([&] { load_image_folder(dir.string(), Split::Test, 8, 3); }).find("broken.png"),
      std::string::npos);
  fs::remove_all(dir);
}

TEST(Div2k, BicubicDownscaledPairs) {
  const fs::path dir = fresh_dir("div2k");
  // A horizontal ramp of 37x30 (odd width: cropped to 36 for scale 2).
  std::vector<uint8_t> pixels;
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 37; ++x) pixels.push_back(uint8_t(40 + 4 * x));
  }
  ASSERT_TRUE(stbi_write_png((dir / "0001.png").c_str(), 37, 30, 1, pixels.data(), 37));
  const SuperResolutionSet set = load_div2k(dir.string(), 2, 1);
  ASSERT_EQ(set.high.size(), 1u);
  EXPECT_EQ(set.high[0].width, 36u);
  EXPECT_EQ(set.high[0].height, 30u);
  EXPECT_EQ(set.low[0].width, 18u);
  EXPECT_EQ(set.low[0].height, 15u);
  // Downscaling a linear ramp by 2 samples it at the centres of 2-pixel cells: x = 2j + 0.5;
  // one channel is the luminance, 16 + 219/255 of the grey value.
  for (uint32_t j = 2; j < 16; ++j) {
    EXPECT_NEAR(set.low[0].pixels[5 * 18 + j], 16 + 219.0 / 255 * (40 + 4 * (2.0 * j + 0.5)), 1.0)
        << j;
  }
  fs::remove_all(dir);
}

TEST(SuperResolution, LumaIsStudioRangeBt601) {
  // Black, white, pure red, green, blue and a grey pixel, against rgb2ycbcr's values.
  const Image rgb{
      1, 6, 3, {0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100}};
  EXPECT_EQ(luma(rgb).pixels, (std::vector<uint8_t>{16, 235, 81, 145, 41, 102}));
  const Image grey{1, 2, 1, {0, 100}};
  EXPECT_EQ(luma(grey).pixels, (std::vector<uint8_t>{16, 102}));  // as R = G = B
}

TEST(SuperResolution, PsnrFromTheMeanSquaredErrorInsideTheBorder) {
  Image a{4, 4, 1, std::vector<uint8_t>(16, 100)};
  Image b = a;
  EXPECT_TRUE(std::isinf(psnr(a, b, 0)));
  b.pixels[0] = 0;  // in the border: ignored with border 1
  EXPECT_TRUE(std::isinf(psnr(a, b, 1)));
  b.pixels[5] = 90;  // inside: MSE 100 / 4 over the 2x2 centre
  EXPECT_NEAR(psnr(a, b, 1), 10 * std::log10(255.0 * 255.0 / 25.0), 1e-9);
  EXPECT_THROW(psnr(a, Image{4, 3, 1, std::vector<uint8_t>(12)}, 0), std::invalid_argument);
  EXPECT_THROW(psnr(a, b, 2), std::invalid_argument);
}

TEST(SuperResolution, PhotosFromOpencvDocSplitOnceAndPaired) {
  const SuperResolutionSet train = load_sr_photos(kOpencvSamplesDir, Split::Train, 2);
  const SuperResolutionSet test = load_sr_photos(kOpencvSamplesDir, Split::Test, 2);
  EXPECT_GE(train.high.size(), 20u);
  EXPECT_GE(test.high.size(), 5u);
  for (const std::string& name : sr_photo_files(Split::Test)) {
    const auto& in_train = sr_photo_files(Split::Train);
    EXPECT_EQ(std::count(in_train.begin(), in_train.end(), name), 0) << name;
  }
  for (const SuperResolutionSet* set : {&train, &test}) {
    for (size_t i = 0; i < set->high.size(); ++i) {
      const Image& high = set->high[i];
      EXPECT_GE(std::min(high.height, high.width), 256u) << set->files[i];
      EXPECT_EQ(high.channels, 1u);
      EXPECT_EQ(set->low[i].height * 2, high.height);
      EXPECT_EQ(set->low[i].width * 2, high.width);
    }
  }
  const std::string error = error_of([] { load_sr_photos("/nonexistent", Split::Test, 2); });
  EXPECT_NE(error.find("/nonexistent/baboon.jpg: missing"), std::string::npos) << error;
  EXPECT_NE(error.find("opencv-doc"), std::string::npos) << error;
}

TEST(SuperResolution, PatchPairsCoverTheSameSceneAtBothResolutions) {
  // Two photographs of different sizes with distinct pixels, scale 2.
  SuperResolutionSet set;
  set.name = "synthetic";
  set.scale = 2;
  for (uint32_t k = 0; k < 2; ++k) {
    const uint32_t h = 10 + 2 * k, w = 13;  // low resolution
    Image low{h, w, 1, {}}, high{2 * h, 2 * w, 1, {}};
    for (uint32_t p = 0; p < h * w; ++p) low.pixels.push_back(uint8_t(p * 7 + k));
    for (uint32_t p = 0; p < 4 * h * w; ++p) high.pixels.push_back(uint8_t(p * 5 + k));
    set.low.push_back(low);
    set.high.push_back(high);
    set.files.push_back("photo" + std::to_string(k));
  }
  const uint32_t patch = 6, stride = 4;
  const ImageDataset pairs = patch_pairs(set, patch, stride);
  // Origins along 10: 0, 4 (8 would overrun) and 4 flush with the end (=10-6) already
  // there; along 12: 0, 4, 6; along 13: 0, 4, 7.
  const std::vector<std::vector<uint32_t>> ys{{0, 4}, {0, 4, 6}};
  const std::vector<uint32_t> xs{0, 4, 7};
  ASSERT_EQ(pairs.size(), 2 * 3 + 3 * 3u);
  EXPECT_EQ(pairs.target_scale, 2u);
  EXPECT_EQ(pairs.targets.size(), pairs.size() * 4 * patch * patch);
  size_t index = 0;
  for (uint32_t k = 0; k < 2; ++k) {
    for (uint32_t y0 : ys[k]) {
      for (uint32_t x0 : xs) {
        const Image& low = set.low[k];
        const Image& high = set.high[k];
        for (uint32_t y = 0; y < patch; ++y) {
          for (uint32_t x = 0; x < patch; ++x) {
            ASSERT_EQ(pairs.image(index)[y * patch + x], low.pixels[(y0 + y) * low.width + x0 + x]);
          }
        }
        for (uint32_t y = 0; y < 2 * patch; ++y) {
          for (uint32_t x = 0; x < 2 * patch; ++x) {
            ASSERT_EQ(pairs.target(index)[y * 2 * patch + x],
                      high.pixels[(2 * y0 + y) * high.width + 2 * x0 + x]);
          }
        }
        ++index;
      }
    }
  }
  ASSERT_EQ(pairs.photo_edges.size(), pairs.size());
  EXPECT_EQ(pairs.photo_edges[0], ImageDataset::kTop | ImageDataset::kLeft);
  EXPECT_EQ(pairs.photo_edges[1], ImageDataset::kTop);
  EXPECT_EQ(pairs.photo_edges[5], ImageDataset::kBottom | ImageDataset::kRight);
  // Held out from the end: the last photograph's patches, targets with them.
  ImageDataset kept = pairs;
  const ImageDataset tail = kept.split_off(9);
  EXPECT_EQ(kept.size(), 6u);
  EXPECT_EQ(kept.targets.size(), 6 * kept.target_bytes());
  EXPECT_EQ(tail.photo_edges.front(), ImageDataset::kTop | ImageDataset::kLeft);
  ASSERT_EQ(tail.size(), 9u);
  EXPECT_TRUE(std::equal(tail.target(0), tail.target(0) + tail.target_bytes(), pairs.target(6)));
  const std::string error = error_of([&] { patch_pairs(set, 11, 4); });
  EXPECT_NE(error.find("photo0: 13x10 at the low resolution, smaller than a 11x11 patch"),
            std::string::npos)
      << error;
}

TEST(BatchLoader, TargetsFollowTheirImagesThroughTheFlip) {
  SuperResolutionSet set;
  set.name = "synthetic";
  set.scale = 2;
  Image low{8, 8, 1, {}}, high{16, 16, 1, {}};
  for (uint32_t p = 0; p < 64; ++p) low.pixels.push_back(uint8_t(p * 3));
  for (uint32_t p = 0; p < 256; ++p) high.pixels.push_back(uint8_t(p));
  set.low = {low};
  set.high = {high};
  set.files = {"ramp"};
  ImageDataset pairs = patch_pairs(set, 4, 2);
  pairs.target_border = 1;
  const Normalization n{0.0f, 1.0f};
  std::mt19937_64 rng(3);
  Batch batch;
  std::vector<uint32_t> indices(pairs.size());
  std::iota(indices.begin(), indices.end(), 0u);
  make_batch(pairs, indices, n, {0, true}, rng, batch);
  ASSERT_EQ(batch.target_height, 8u);
  ASSERT_EQ(batch.target_weights.size(), batch.targets.size());
  ASSERT_EQ(batch.targets.size(), pairs.size() * 64);
  int flipped = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    // Mirrored or not, the image and its target alike.
    const bool flip = batch.images[i * 16] != n.normalize(pairs.image(i)[0]);
    flipped += flip;
    for (uint32_t y = 0; y < 4; ++y) {
      for (uint32_t x = 0; x < 4; ++x) {
        ASSERT_EQ(batch.images[i * 16 + y * 4 + x],
                  n.normalize(pairs.image(i)[y * 4 + (flip ? 3 - x : x)]));
      }
    }
    // Patches at origins 0, 2, 4 along each axis of the 8x8 photograph: the first and last
    // touch its edges; a target pixel within 1 of any other side is not counted.
    const uint32_t oy = uint32_t(i) / 3 * 2, ox = uint32_t(i) % 3 * 2;
    for (uint32_t y = 0; y < 8; ++y) {
      for (uint32_t x = 0; x < 8; ++x) {
        const uint32_t sx = flip ? 7 - x : x;  // in the unmirrored patch
        ASSERT_EQ(batch.targets[i * 64 + y * 8 + x], n.normalize(pairs.target(i)[y * 8 + sx]));
        const bool counted = (oy == 0 || y >= 1) && (oy == 4 || y < 7) && (ox == 0 || sx >= 1) &&
                             (ox == 4 || sx < 7);
        ASSERT_EQ(batch.target_weights[i * 64 + y * 8 + x], counted ? 1.0f : 0.0f)
            << i << " " << y << " " << x;
      }
    }
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, int(pairs.size()));
  EXPECT_THROW(make_batch(pairs, indices, n, {1, false}, rng, batch), std::invalid_argument);
}

namespace {

ImageDataset ramp_set(size_t count, uint32_t side, uint32_t channels) {
  ImageDataset set;
  set.name = "ramp";
  set.height = set.width = side;
  set.channels = channels;
  set.classes = 10;
  for (size_t i = 0; i < count; ++i) {
    for (size_t p = 0; p < size_t{side} * side * channels; ++p) {
      set.pixels.push_back(uint8_t((i * 13 + p * 3) % 256));
    }
    set.labels.push_back(uint16_t(i % 10));
  }
  return set;
}

}  // namespace

TEST(Normalization, Int8InputRepresentsNormalisedPixelExactly) {
  const Normalization n{0.286f, 0.353f};
  for (int p = 0; p < 256; ++p) {
    const float real = n.input_scale() * float(quantize_pixel(uint8_t(p)) - n.input_zero_point());
    EXPECT_NEAR(real, n.normalize(uint8_t(p)), 1e-5f);
  }
}

TEST(BatchLoader, EveryImageOncePerEpochInDeterministicOrder) {
  const ImageDataset set = ramp_set(50, 6, 3);
  BatchLoader::Options options{8, true, false, 7, 2};
  BatchLoader a(set, {}, {2, true}, options), b(set, {}, {2, true}, options);
  EXPECT_EQ(a.batches_per_epoch(), 7u);
  std::vector<uint32_t> order_a, order_b, order_next;
  std::vector<float> images_a, images_b;
  Batch batch;
  a.start_epoch(3);
  while (a.next(batch)) {
    order_a.insert(order_a.end(), batch.indices.begin(), batch.indices.end());
    images_a.insert(images_a.end(), batch.images.begin(), batch.images.end());
  }
  b.start_epoch(3);
  while (b.next(batch)) {
    order_b.insert(order_b.end(), batch.indices.begin(), batch.indices.end());
    images_b.insert(images_b.end(), batch.images.begin(), batch.images.end());
  }
  EXPECT_EQ(order_a, order_b);
  EXPECT_EQ(images_a, images_b);
  std::vector<uint32_t> sorted = order_a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint32_t> all(50);
  std::iota(all.begin(), all.end(), 0u);
  EXPECT_EQ(sorted, all);
  a.start_epoch(4);
  while (a.next(batch))
    order_next.insert(order_next.end(), batch.indices.begin(), batch.indices.end());
  EXPECT_NE(order_next, order_a);
  // Abandoning an epoch half-way and restarting it gives the same batches.
  a.start_epoch(3);
  ASSERT_TRUE(a.next(batch));
  a.start_epoch(3);
  ASSERT_TRUE(a.next(batch));
  EXPECT_EQ(std::vector<uint32_t>(order_a.begin(), order_a.begin() + 8), batch.indices);
}

TEST(BatchLoader, RankSharesTogetherAreTheOneProcessBatch) {
  // Data-parallel ranks each make their share of every batch; laid end to end in rank
  // order, the shares must be the batch one process makes, augmentation draws included,
  // also when the batch does not divide evenly (50 = 6 x 8 + 2; 3 ranks).
  const ImageDataset set = ramp_set(50, 6, 3);
  for (uint32_t world : {2u, 3u}) {
    BatchLoader::Options options{8, true, false, 7, 2};
    BatchLoader whole(set, {}, {2, true}, options);
    std::vector<std::unique_ptr<BatchLoader>> ranks;
    for (uint32_t r = 0; r < world; ++r) {
      BatchLoader::Options share = options;
      share.rank = r;
      share.world_size = world;
      ranks.push_back(
          std::make_unique<BatchLoader>(set, Normalization{}, Augmentation{2, true}, share));
      EXPECT_EQ(ranks.back()->batches_per_epoch(), whole.batches_per_epoch());
      ranks.back()->start_epoch(5);
    }
    whole.start_epoch(5);
    Batch batch, part;
    while (whole.next(batch)) {
      std::vector<uint32_t> indices;
      std::vector<float> images;
      std::vector<int64_t> labels;
      for (uint32_t r = 0; r < world; ++r) {
        ASSERT_TRUE(ranks[r]->next(part));
        const BatchShare expected = batch_share(batch.size, r, world);
        EXPECT_EQ(part.size, expected.count);
        EXPECT_EQ(part.global_size, batch.size);
        indices.insert(indices.end(), part.indices.begin(), part.indices.end());
        images.insert(images.end(), part.images.begin(), part.images.end());
        labels.insert(labels.end(), part.labels.begin(), part.labels.end());
      }
      EXPECT_EQ(indices, batch.indices);
      EXPECT_EQ(images, batch.images);
      EXPECT_EQ(labels, batch.labels);
    }
  }
  // Shares: contiguous, sizes differing by at most one, covering the batch.
  for (size_t size : {1, 7, 8, 128}) {
    for (uint32_t world : {1u, 2u, 3u, 5u}) {
      size_t next = 0;
      for (uint32_t r = 0; r < world; ++r) {
        const BatchShare s = batch_share(size, r, world);
        EXPECT_EQ(s.first, next);
        EXPECT_LE(s.count, size / world + 1);
        EXPECT_GE(s.count, size / world);
        next += s.count;
      }
      EXPECT_EQ(next, size);
    }
  }
}

TEST(BatchLoader, AugmentedImagesAreShiftedOrMirroredOriginals) {
  const ImageDataset set = ramp_set(20, 8, 2);
  const Normalization n{0.5f, 0.25f};
  const uint32_t pad = 2;
  std::mt19937_64 rng(5);
  Batch batch;
  std::vector<uint32_t> indices(20);
  std::iota(indices.begin(), indices.end(), 0u);
  make_batch(set, indices, n, {0, false}, rng, batch);
  // Without augmentation: NCHW of the normalised pixels.
  for (uint32_t i = 0; i < 20; ++i) {
    for (uint32_t c = 0; c < 2; ++c) {
      EXPECT_EQ(batch.images[((i * 2 + c) * 8 + 3) * 8 + 5],
                n.normalize(set.image(i)[(3 * 8 + 5) * 2 + c]));
    }
  }
  make_batch(set, indices, n, {pad, true}, rng, batch);
  int flipped = 0, shifted = 0;
  for (uint32_t i = 0; i < 20; ++i) {
    bool matched = false;
    for (int flip = 0; flip < 2 && !matched; ++flip) {
      for (int dy = -int(pad); dy <= int(pad) && !matched; ++dy) {
        for (int dx = -int(pad); dx <= int(pad) && !matched; ++dx) {
          bool all = true;
          for (int y = 0; y < 8 && all; ++y) {
            for (int x = 0; x < 8 && all; ++x) {
              const int sy = y + dy, sx = (flip ? 7 - x : x) + dx;
              for (int c = 0; c < 2 && all; ++c) {
                const float expected =
                    sy >= 0 && sy < 8 && sx >= 0 && sx < 8
                        ? n.normalize(set.image(i)[(size_t(sy) * 8 + size_t(sx)) * 2 + size_t(c)])
                        : n.normalize(0);
                all = batch.images[((size_t(i) * 2 + size_t(c)) * 8 + size_t(y)) * 8 + size_t(x)] ==
                      expected;
              }
            }
          }
          if (all) {
            matched = true;
            flipped += flip;
            shifted += dy != 0 || dx != 0;
          }
        }
      }
    }
    EXPECT_TRUE(matched) << "image " << i;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_GT(shifted, 0);
}
