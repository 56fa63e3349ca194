// `udc results`: seeds summaries written by hand, their figures worked out by hand (mean,
// sample standard deviation, which folders are on the Pareto front), and the errors that
// name the file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "udc/search/results_summary.hpp"
#include "udc/search/seeds.hpp"

namespace udc::search {
namespace {

namespace fs = std::filesystem;

class ResultsSummary : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("udc_results_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  /// Writes root/name/seeds.json with `text` and returns the folder.
  std::string folder(const std::string& name, const std::string& text) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "seeds.json") << text;
    return dir.string();
  }

  /// A summary in the format seeds.cpp writes; `runs` is the JSON array's content.
  static std::string summary(const std::string& unit, const std::string& runs) {
    return "{\"config\": \"configs/search/x.yaml\", \"score_unit\": \"" + unit + "\", \"runs\": [" +
           runs + "], \"summary\": {}}";
  }

  fs::path root_;
};

TEST_F(ResultsSummary, MeansSpreadsAndTheParetoFrontOverFolders) {
  // dnas: 91, 92, 93 % at 8000, 8100, 8200 B: 92 ± 1 % at 8100 ± 100 B.
  const std::string dnas = folder(
      "dnas",
      summary(
          "percent",
          R"({"seed": 1, "test_accuracy": 91.0, "weight_bytes": 8000, "flash_bytes": 9000, "seconds": 600},
                         {"seed": 2, "test_accuracy": 92.0, "weight_bytes": 8100, "flash_bytes": 9100, "seconds": 660},
                         {"seed": 3, "test_accuracy": 93.0, "weight_bytes": 8200, "flash_bytes": 9200, "seconds": 720})"));
  // small: 89, 91 % at 2000 B: fewer bytes than dnas, so on the front despite less accuracy.
  const std::string small = folder(
      "small",
      summary(
          "percent",
          R"({"seed": 1, "test_accuracy": 89.0, "weight_bytes": 2000, "flash_bytes": 2500, "seconds": 60},
                          {"seed": 2, "test_accuracy": 91.0, "weight_bytes": 2000, "flash_bytes": 2500, "seconds": 60, "within_budgets": false})"));
  // big: 88 % at 9000 B: dnas is better on both.
  const std::string big = folder(
      "big",
      summary(
          "percent",
          R"({"seed": 4, "test_accuracy": 88.0, "weight_bytes": 9000, "flash_bytes": 9500, "seconds": 100})"));
  // float: no NPU, so no bytes: listed, not plotted, not on the front.
  const std::string float_only =
      folder("float", summary("percent", R"({"seed": 1, "test_accuracy": 95.0, "seconds": 30})"));

  const std::vector<ResultSummary> r =
      summarise_results({dnas, small, big, (fs::path(float_only) / "seeds.json").string()});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].name, "dnas");
  EXPECT_EQ(r[0].config_file, "configs/search/x.yaml");
  EXPECT_EQ(r[0].seeds, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_NEAR(r[0].score.mean, 92.0, 1e-9);
  EXPECT_NEAR(r[0].score.std, 1.0, 1e-9);
  EXPECT_NEAR(r[0].weight_bytes.mean, 8100.0, 1e-9);
  EXPECT_NEAR(r[0].weight_bytes.std, 100.0, 1e-9);
  EXPECT_NEAR(r[0].seconds.mean, 660.0, 1e-9);
  EXPECT_NEAR(r[1].score.mean, 90.0, 1e-9);
  EXPECT_NEAR(r[1].score.std, std::sqrt(2.0), 1e-9);
  EXPECT_EQ(r[1].over_budget, 1u);
  EXPECT_EQ(r[3].name, "float");  // named by its folder when given the file
  EXPECT_EQ(r[3].weight_bytes.n, 0u);
  EXPECT_TRUE(r[0].pareto);
  EXPECT_TRUE(r[1].pareto);
  EXPECT_FALSE(r[2].pareto);
  EXPECT_FALSE(r[3].pareto);

  const std::string table = results_markdown_table(r);
  EXPECT_NE(table.find("| `dnas` | 1, 2, 3 | 92.00 ± 1.00 | 91.00, 92.00, 93.00 | 8100 ± 100 | "
                       "9100 ± 100 | 11.0 ± 1.0 | yes |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("90.00 ± 1.41 (1 over budget)"), std::string::npos) << table;
  EXPECT_NE(table.find("| `float` | 1 | 95.00 ± 0.00 | 95.00 | - | - |"), std::string::npos)
      << table;

  const std::string csv = results_csv(r);
  EXPECT_NE(csv.find("\ndnas,configs/search/x.yaml,percent,3,92,1,8100,100,9100,100,660,60,0,1\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("\nbig,configs/search/x.yaml,percent,1,88,0,9000,0,9500,0,100,0,0,0\n"),
            std::string::npos)
      << csv;

  const std::string svg = results_plot_svg(r, "t");
  EXPECT_NE(svg.find(">dnas (3 seeds), on the front<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">big (1 seeds)<"), std::string::npos) << svg;
  EXPECT_NE(svg.find("dnas (3 seeds): 92.00 ± 1.00 at 8100 ± 100 B"), std::string::npos);
  EXPECT_EQ(svg.find("float ("), std::string::npos);  // no bytes: not plotted
  // The front joins small and dnas; dnas's error bars (both spreads non-zero) are drawn in
  // its colour, the first of the palette; big (no spread) has none in its own.
  EXPECT_NE(svg.find("<polyline fill=\"none\" stroke=\"#d62728\""), std::string::npos);
  size_t dnas_bars = 0, big_bars = 0;
  for (size_t at = svg.find("stroke=\"#1f77b4\"/>"); at != std::string::npos;
       at = svg.find("stroke=\"#1f77b4\"/>", at + 1)) {
    ++dnas_bars;
  }
  for (size_t at = svg.find("stroke=\"#2ca02c\"/>"); at != std::string::npos;
       at = svg.find("stroke=\"#2ca02c\"/>", at + 1)) {
    ++big_bars;
  }
  EXPECT_EQ(dnas_bars, 2u);
  EXPECT_EQ(big_bars, 0u);
}

TEST_F(ResultsSummary, ErrorsNameTheFile) {
  const std::string missing = (root_ / "nothing").string();
  try {
    summarise_results({missing});
    FAIL() << "a folder without seeds.json was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string corrupt = folder("corrupt", "{\"runs\": [");
  try {
    summarise_results({corrupt});
    FAIL() << "a corrupt seeds.json was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(corrupt), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a seeds summary"), std::string::npos) << e.what();
  }
  const std::string bad_figure =
      folder("bad_figure",
             summary("percent", R"({"seed": 2, "test_accuracy": 90, "weight_bytes": "many"})"));
  try {
    summarise_results({bad_figure});
    FAIL() << "a non-numeric figure was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("seed 2: \"weight_bytes\" is not a number"),
              std::string::npos)
        << e.what();
  }
  const std::string bad_unit = folder("bad_unit", summary("furlongs", ""));
  EXPECT_THROW(summarise_results({bad_unit}), std::runtime_error);
  // Accuracy and PSNR do not share a table.
  const std::string accuracy =
      folder("accuracy", summary("percent", R"({"seed": 1, "test_accuracy": 90})"));
  const std::string psnr = folder("psnr", summary("dB", R"({"seed": 1, "test_psnr_db": 30})"));
  try {
    summarise_results({accuracy, psnr});
    FAIL() << "accuracy and PSNR were summarised together";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(psnr), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(accuracy), std::string::npos) << e.what();
  }
  // The PSNR folder alone reads, its score in dB as written.
  const std::vector<ResultSummary> r = summarise_results({psnr});
  EXPECT_EQ(r[0].metric, Metric::Psnr);
  EXPECT_NEAR(r[0].score.mean, 30.0, 1e-9);
}

}  // namespace
}  // namespace udc::search
