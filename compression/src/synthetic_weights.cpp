#include "udc/compression/synthetic_weights.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace udc::compression {
namespace {

[[noreturn]] void unknown(const std::string& name) {
  throw std::invalid_argument("unknown weight distribution '" + name +
                              "' (expected gaussB_S with B in 2..8 and S in 0..100, uniform8, "
                              "runs, pal4x, zeros or const)");
}

}  // namespace

const std::vector<std::string>& standard_distributions() {
  static const std::vector<std::string> names = {"gauss8_0", "gauss8_50", "gauss8_90",
                                                 "gauss4_0", "gauss4_70", "gauss2_50",
                                                 "uniform8", "runs",      "pal4x"};
  return names;
}

std::vector<int8_t> synthetic_weights(const std::string& distribution, size_t count,
                                      uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int8_t> weights(count, 0);
  if (distribution.rfind("gauss", 0) == 0) {
    int bits = 0, sparsity = 0;
    char tail = 0;
    if (std::sscanf(distribution.c_str(), "gauss%d_%d%c", &bits, &sparsity, &tail) != 2 ||
        bits < 2 || bits > 8 || sparsity < 0 || sparsity > 100) {
      unknown(distribution);
    }
    const int qmax = (1 << (bits - 1)) - 1;
    std::normal_distribution<double> normal(0.0, qmax / 3.0);
    std::bernoulli_distribution pruned(sparsity / 100.0);
    for (int8_t& w : weights) {
      const double value = std::clamp(std::round(normal(rng)), double(-qmax), double(qmax));
      w = pruned(rng) ? 0 : static_cast<int8_t>(value);
    }
  } else if (distribution == "uniform8") {
    std::uniform_int_distribution<int> uniform(-128, 127);
    for (int8_t& w : weights) w = static_cast<int8_t>(uniform(rng));
  } else if (distribution == "runs") {
    std::geometric_distribution<int> run(1.0 / 33.0);
    static constexpr int8_t kValues[] = {-1, 1, 127, -128};
    std::uniform_int_distribution<int> pick(0, 3);
    for (size_t i = static_cast<size_t>(run(rng)); i < count;
         i += 1 + static_cast<size_t>(run(rng))) {
      weights[i] = kValues[pick(rng)];
    }
  } else if (distribution == "pal4x") {
    std::bernoulli_distribution zero(0.35);
    std::uniform_int_distribution<int> level(1, 7);
    std::bernoulli_distribution negative(0.5);
    for (int8_t& w : weights) {
      if (zero(rng)) continue;
      const int value = 16 * level(rng);
      w = static_cast<int8_t>(negative(rng) ? -value : value);
    }
  } else if (distribution == "zeros") {
  } else if (distribution == "const") {
    std::fill(weights.begin(), weights.end(), int8_t{-3});
  } else {
    unknown(distribution);
  }
  return weights;
}

}  // namespace udc::compression
