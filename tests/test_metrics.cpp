// Metrics against hand-computed examples, and the plots that show them.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "hubble/io/plots.hpp"
#include "hubble/metrics/classification.hpp"
#include "support.hpp"

using namespace hubble;
using doctest::Approx;

namespace {
// truth     0 0 0 0 1 1 2          confusion (rows truth, columns predicted)
// predicted 0 0 0 1 1 0 1              3 1 0
//                                      1 1 0
//                                      0 1 0
const std::vector<int> truth{0, 0, 0, 0, 1, 1, 2};
const std::vector<int> predicted{0, 0, 0, 1, 1, 0, 1};
}  // namespace

TEST_CASE("metrics: confusion matrix counts (truth, predicted) pairs") {
  metrics::ConfusionMatrix c(3);
  c.add(truth, predicted);
  CHECK(c(0, 0) == 3);
  CHECK(c(0, 1) == 1);
  CHECK(c(1, 0) == 1);
  CHECK(c(1, 1) == 1);
  CHECK(c(2, 1) == 1);
  CHECK(c(2, 2) == 0);
  CHECK(c.total() == 7);
  CHECK(c.row_sum(0) == 4);
  CHECK(c.column_sum(1) == 3);
  CHECK_THROWS_AS(c.add(3, 0), Error);
  CHECK_THROWS_AS(c.add(std::vector<int>{0}, std::vector<int>{0, 1}), Error);
}

TEST_CASE("metrics: accuracy, per-class and macro precision / recall / F1 by hand") {
  const metrics::Report r = metrics::report(truth, predicted, 3);
  CHECK(r.accuracy == Approx(4.0 / 7.0));
  // class 0: 3 right of 4 predicted, 3 found of 4 present
  CHECK(r.per_class[0].precision == Approx(0.75));
  CHECK(r.per_class[0].recall == Approx(0.75));
  CHECK(r.per_class[0].f1 == Approx(0.75));
  CHECK(r.per_class[0].support == 4);
  // class 1: 1 right of 3 predicted, 1 found of 2 present; F1 = 2 (1/3)(1/2) / (5/6) = 0.4
  CHECK(r.per_class[1].precision == Approx(1.0 / 3.0));
  CHECK(r.per_class[1].recall == Approx(0.5));
  CHECK(r.per_class[1].f1 == Approx(0.4));
  // class 2: never predicted -> precision 0/0 := 0; recall 0/1 = 0; F1 0/0 := 0
  CHECK(r.per_class[2].precision == 0.0);
  CHECK(r.per_class[2].recall == 0.0);
  CHECK(r.per_class[2].f1 == 0.0);
  CHECK(r.per_class[2].predicted == 0);
  CHECK(r.macro_precision == Approx((0.75 + 1.0 / 3.0 + 0.0) / 3.0));
  CHECK(r.macro_recall == Approx((0.75 + 0.5 + 0.0) / 3.0));
  CHECK(r.macro_f1 == Approx((0.75 + 0.4 + 0.0) / 3.0));
}

TEST_CASE("metrics: a class absent and never predicted counts as 0 in the macro averages") {
  const metrics::Report r = metrics::report(truth, predicted, 4);
  CHECK(r.per_class[3].support == 0);
  CHECK(r.per_class[3].precision == 0.0);
  CHECK(r.per_class[3].recall == 0.0);
  CHECK(r.macro_recall == Approx((0.75 + 0.5) / 4.0));
  CHECK(r.accuracy == Approx(4.0 / 7.0));
}

TEST_CASE("metrics: perfect and empty predictions") {
  const std::vector<int> y{0, 1, 2, 2};
  const metrics::Report perfect = metrics::report(y, y, 3);
  CHECK(perfect.accuracy == 1.0);
  CHECK(perfect.macro_f1 == 1.0);
  const metrics::Report empty = metrics::report(std::vector<int>{}, std::vector<int>{}, 3);
  CHECK(empty.accuracy == 0.0);
  CHECK(empty.total == 0);
  CHECK(empty.macro_precision == 0.0);
}

TEST_CASE("metrics: the table and the confusion matrix show class names and numbers") {
  const metrics::Report r = metrics::report(truth, predicted, 3, {"Round", "Spiral", "Edge-on"});
  const std::string table = metrics::format_table(r);
  CHECK(table.find("0 Round") != std::string::npos);
  CHECK(table.find("2 Edge-on") != std::string::npos);
  CHECK(table.find("0.750") != std::string::npos);
  CHECK(table.find("0.400") != std::string::npos);
  CHECK(table.find("macro average") != std::string::npos);
  CHECK(table.find("0.571") != std::string::npos);  // accuracy 4/7
  const std::string cm = metrics::format_confusion(r);
  CHECK(cm.find("1 Spiral") != std::string::npos);
  CHECK(cm.find("3   1   0") != std::string::npos);
  CHECK_THROWS_AS(metrics::report(truth, predicted, 3, {"only one"}), Error);
}

TEST_CASE("metrics: JSON output holds the figures and the confusion matrix") {
  const metrics::Report r = metrics::report(truth, predicted, 3, {"a \"quoted\" name", "b", "c"});
  const std::string j = metrics::to_json(r).str();
  CHECK(j.find("\"accuracy\": 0.5714285714285714") != std::string::npos);
  CHECK(j.find("\"macro_f1\": 0.3833333333333333") != std::string::npos);
  CHECK(j.find("\"confusion_matrix\": [[3, 1, 0], [1, 1, 0], [0, 1, 0]]") != std::string::npos);
  CHECK(j.find("\"name\": \"a \\\"quoted\\\" name\"") != std::string::npos);
  CHECK(j.find("\"support\": 4") != std::string::npos);
  CHECK(json::number(std::nan("")) == "null");
  CHECK(json::number(0.1) == "0.1");
}

// ---- the plots of io/plots.hpp (drawn by hand; checked through their pixels and PNG headers) ----

namespace {
// Width and height from a PNG file's IHDR chunk (bytes 16..23, big-endian).
std::pair<int, int> png_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string head(24, '\0');
  f.read(head.data(), 24);
  REQUIRE(head.substr(1, 3) == "PNG");
  const auto be32 = [&](int at) {
    int v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(head[std::size_t(at + i)]);
    return v;
  };
  return {be32(16), be32(20)};
}
}  // namespace

TEST_CASE("plots: round tick values") {
  const auto unit = plots::nice_ticks(0, 1, 5);
  REQUIRE(unit.size() == 6);
  for (std::size_t i = 0; i < unit.size(); ++i) CHECK(unit[i] == doctest::Approx(0.2 * double(i)));
  const auto t = plots::nice_ticks(0.3, 2.3, 5);
  REQUIRE(t.size() == 4);
  CHECK(t.front() == doctest::Approx(0.5));
  CHECK(t.back() == doctest::Approx(2.0));
  CHECK(plots::tick_label(0.25) == "0.25");
}

TEST_CASE("plots: the bitmap font draws glyphs where asked") {
  plots::Canvas c(20, 12, plots::white);
  c.text(1, 1, "I", plots::black);
  // 'I' is a 3-pixel bar on top and bottom, a stem in the middle column (x = 1 + 2).
  CHECK(c.at(3, 4).r == 0);
  CHECK(c.at(2, 1).r == 0);
  CHECK(c.at(1, 4).r == 255);
  CHECK(plots::Canvas::text_width("abc") == 17);
  c.text(10, 1, "\x01", plots::black);  // unknown characters draw as '?', not out of bounds
}

TEST_CASE("plots: curves, confusion matrix and filter grid are written as PNGs of the expected size") {
  const test_support::TempDir scratch("plots");
  const auto& dir = scratch.path();
  const std::vector<double> epochs{1, 2, 3}, loss{2.0, 1.0, 0.5}, acc{0.3, 0.6, 0.8};
  const std::vector<double> none(3, std::nan(""));
  const std::string curves = (dir / "curves.png").string();
  plots::save_training_curves(curves, epochs, loss, none, acc, none);
  CHECK(png_size(curves) == std::pair{1000, 420});
  const std::string cm = (dir / "cm.png").string();
  plots::save_confusion_matrix(cm, {5, 1, 0, 7}, 2, {"Round", "Spiral"}, "test");
  CHECK(png_size(cm).first > 100);
  CHECK_THROWS_AS(plots::save_confusion_matrix(cm, {1, 2, 3}, 2, {}, "bad"), Error);
  std::vector<float> kernel(5 * 5 * 3 * 32);
  for (std::size_t i = 0; i < kernel.size(); ++i) kernel[i] = float(i % 7);
  const std::string filters = (dir / "filters.png").string();
  plots::save_filter_grid(filters, kernel.data(), 5, 3, 32);
  CHECK(png_size(filters) == std::pair{8 * (70 + 6) + 6, 34 + 4 * (70 + 6) + 6});
  std::filesystem::remove_all(dir);
}
