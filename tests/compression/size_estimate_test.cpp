// The histogram estimate tracks the exact size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "udc/compression/encoder.hpp"
#include "udc/compression/size_estimate.hpp"
#include "udc/compression/synthetic_weights.hpp"

namespace udc::compression {
namespace {

TEST(SizeEstimate, WithinFivePercentOfExactOnShuffledDistributions) {
  WeightEncoder encoder;
  for (const std::string& name : standard_distributions()) {
    if (name == "runs") continue;  // runs are not i.i.d.; checked below
    const std::vector<int8_t> weights = synthetic_weights(name, 65536, 17);
    const double exact = static_cast<double>(encoder.encoded_bytes(weights.data(), weights.size()));
    const SizeEstimate estimate =
        estimate_stream_size(WeightHistogram::of(weights.data(), weights.size()));
    const double error = (static_cast<double>(estimate.stream_bytes) - exact) / exact;
    std::printf("[ estimate ] %-10s exact %7.0f B  estimate %7llu B  error %+6.2f %%\n",
                name.c_str(), exact, static_cast<unsigned long long>(estimate.stream_bytes),
                100 * error);
    EXPECT_LT(std::fabs(error), 0.05) << name;
  }
}

TEST(SizeEstimate, EmptyAndAllZero) {
  EXPECT_EQ(estimate_stream_size(WeightHistogram{}).stream_bytes, 16u);
  WeightHistogram zeros;
  zeros.add(0, 4096);
  const SizeEstimate estimate = estimate_stream_size(zeros);
  EXPECT_TRUE(estimate.zero_runs);
  const std::vector<int8_t> weights(4096, 0);
  EXPECT_EQ(estimate.stream_bytes, encoded_size_bytes(weights.data(), weights.size()));
}

}  // namespace
}  // namespace udc::compression
