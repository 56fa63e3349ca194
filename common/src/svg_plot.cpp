#include "udc/common/svg_plot.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace udc::common {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string svg_scatter_plot(const PlotSpec& spec) {
  constexpr double W = 760, H = 500, left = 80, right = 30, top = 50, bottom = 60;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const PlotSeries& s : spec.series) {
    for (const PlotPoint& p : s.points) {
      x0 = std::min(x0, p.x - p.x_error);
      x1 = std::max(x1, p.x + p.x_error);
      y0 = std::min(y0, p.y - p.y_error);
      y1 = std::max(y1, p.y + p.y_error);
    }
  }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"25\" font-size=\"15\">{}</text>\n",
      W, H, left, escape(spec.title));
  if (!(x1 >= x0)) return svg + "<text x=\"80\" y=\"80\">nothing to plot</text>\n</svg>\n";
  // Margins so that points do not sit on the axes.
  const double x_pad = x1 > x0 ? 0.05 * (x1 - x0) : std::max(1.0, 0.05 * std::abs(x0));
  x0 = spec.y_from_zero ? std::min(0.0, x0 - x_pad) : x0 - x_pad;
  x1 += x_pad;
  if (spec.y_from_zero) {
    y0 = std::min(0.0, y0);
  } else {
    y0 -= y1 > y0 ? 0.05 * (y1 - y0) : 1.0;
  }
  y1 = y1 > y0 ? y1 + 0.05 * (y1 - y0) : y0 + 1.0;
  auto sx = [&](double v) { return left + (v - x0) / (x1 - x0) * (W - left - right); };
  auto sy = [&](double v) { return H - bottom - (v - y0) / (y1 - y0) * (H - top - bottom); };
  svg += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n"
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{3}\" stroke=\"black\"/>\n",
      left, H - bottom, W - right, top);
  for (int i = 0; i <= 5; ++i) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    svg += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.4g}</text>\n"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n"
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
        sx(xv), H - bottom + 18, xv, left - 6, sy(yv) + 4, yv, left, sy(yv), W - right, sy(yv));
  }
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n"
      "<text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      (left + W - right) / 2, H - 15, escape(spec.x_label), (top + H - bottom) / 2,
      escape(spec.y_label));
  size_t named_series = 0;
  for (const PlotSeries& s : spec.series) named_series += s.name.empty() ? 0 : 1;
  constexpr double legend_line = 16;  // [px]
  double legend_y =
      spec.legend_at_bottom ? H - bottom - 10 - legend_line * double(named_series) : top + 5;
  for (const PlotSeries& s : spec.series) {
    std::vector<PlotPoint> sorted = s.points;
    std::sort(sorted.begin(), sorted.end(),
              [](const PlotPoint& a, const PlotPoint& b) { return a.x < b.x; });
    if (s.connect && sorted.size() > 1) {
      svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" points=\"", s.color);
      for (const PlotPoint& p : sorted) svg += fmt::format("{:.1f},{:.1f} ", sx(p.x), sy(p.y));
      svg += "\"/>\n";
    }
    for (const PlotPoint& p : sorted) {
      if (p.x_error > 0) {
        svg += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>\n",
            sx(p.x - p.x_error), sy(p.y), sx(p.x + p.x_error), sy(p.y), s.color);
      }
      if (p.y_error > 0) {
        svg += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>\n",
            sx(p.x), sy(p.y - p.y_error), sx(p.x), sy(p.y + p.y_error), s.color);
      }
      svg += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"><title>{}</title></circle>\n",
          sx(p.x), sy(p.y), s.radius, s.color, escape(p.label));
      if (s.show_labels) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\">{}</text>\n",
                           sx(p.x) + s.radius + 3, sy(p.y) - s.radius, s.color, escape(p.label));
      }
    }
    if (!s.name.empty()) {
      svg += fmt::format(
          "<circle cx=\"{}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n<text x=\"{}\" y=\"{:.1f}\" "
          "fill=\"{}\">{}</text>\n",
          W - right - 330, legend_y - 4, s.color, W - right - 320, legend_y, s.color,
          escape(s.name));
      legend_y += legend_line;
    }
  }
  return svg + "</svg>\n";
}

}  // namespace udc::common
