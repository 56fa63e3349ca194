// ConfigSource: how --npu/--set and a config's npu:/npu_set: combine, and how reports
// name the result.
#include "udc/common/config_source.hpp"

#include <gtest/gtest.h>

namespace udc::common {
namespace {

TEST(ConfigSource, DescribeNamesFilesThenOverrides) {
  EXPECT_EQ(ConfigSource{}.describe(), "built-in defaults");
  EXPECT_EQ((ConfigSource{{"a.yaml"}, {}}).describe(), "a.yaml");
  EXPECT_EQ((ConfigSource{{"a.yaml", "b.yaml"}, {"x=1", "y=2"}}).describe(),
            "a.yaml + b.yaml, set x=1, y=2");
  EXPECT_EQ((ConfigSource{{}, {"x=1"}}).describe(), "built-in defaults, set x=1");
}

TEST(ConfigSource, CommandLineFilesReplaceAndOverridesApplyLast) {
  const ConfigSource config{{"config.yaml"}, {"x=1"}};
  // --set only: the config's files and overrides, then the command line's.
  const ConfigSource set_only = config.overridden_by({{}, {"y=2"}});
  EXPECT_EQ(set_only.files, std::vector<std::string>{"config.yaml"});
  EXPECT_EQ(set_only.overrides, (std::vector<std::string>{"x=1", "y=2"}));
  // --npu: a new NPU, so the config's overrides of the old one no longer apply.
  const ConfigSource replaced = config.overridden_by({{"other.yaml"}, {"z=3"}});
  EXPECT_EQ(replaced.files, std::vector<std::string>{"other.yaml"});
  EXPECT_EQ(replaced.overrides, std::vector<std::string>{"z=3"});
  EXPECT_EQ(config.overridden_by({}).describe(), config.describe());
}

}  // namespace
}  // namespace udc::common
