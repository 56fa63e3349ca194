// libFuzzer target: the Fashion-MNIST IDX reader must reject malformed headers, sizes and
// labels with an error naming the file and offset; what it accepts holds one label per
// image and exactly the pixels its header says. The input's first byte splits it into the
// image file and the label file.
#include <cstdlib>
#include <stdexcept>

#include "udc/data/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace udc::data;
  if (size < 1) return 0;
  const size_t split = std::min<size_t>(size - 1, data[0]);
  const std::vector<uint8_t> labels(data + 1, data + 1 + split);
  const std::vector<uint8_t> images(data + 1 + split, data + size);
  try {
    const ImageDataset set =
        parse_fashion_mnist(images, "images.idx", labels, "labels.idx", Split::Test);
    if (set.labels.size() != set.size() ||
        set.pixels.size() != set.size() * set.height * set.width * set.channels) {
      std::abort();
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
