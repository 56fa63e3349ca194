// Scatter plots as standalone SVG text (no dependencies), for `udc sweep` (latency against
// hardware size), `udc search` (accuracy against compressed size) and `udc results` (the
// same over seeds, with error bars).
#pragma once

#include <string>
#include <vector>

namespace udc::common {

struct PlotPoint {
  double x = 0, y = 0;
  std::string label;  ///< tooltip; also drawn beside the point when the series says so
  /// Half-lengths of the error bars drawn through the point (e.g. a standard deviation over
  /// seeds), in the axes' units; 0: none.
  double x_error = 0, y_error = 0;
};

struct PlotSeries {
  std::string name;  ///< legend entry
  std::string color = "#999";
  double radius = 3;     ///< [px]
  bool connect = false;  ///< join the points in order of x
  bool show_labels = false;
  std::vector<PlotPoint> points;
};

struct PlotSpec {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool y_from_zero = true;  ///< else the y axis starts just below the smallest value
  /// Where the legend goes: top right, or bottom right (for plots whose points crowd the top
  /// right, like accuracy against size).
  bool legend_at_bottom = false;
};

/// The plot; a spec without points gives a plot that says so.
std::string svg_scatter_plot(const PlotSpec& spec);

}  // namespace udc::common
