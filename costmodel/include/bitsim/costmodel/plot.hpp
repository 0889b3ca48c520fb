// Plots made with gnuplot: a roofline with each layer as a point, and stacked energy-breakdown
// bars. Files appear atomically (temp file, then rename); any failure is one clear PlotError.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bitsim/costmodel/roofline.hpp"

namespace bitsim::costmodel {

struct PlotError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The gnuplot program: $BITSIM_GNUPLOT if set, else "gnuplot" from PATH.
std::string gnuplot_program();

// Log-log roofline (ops/byte against ops/s): the compute and bandwidth roofs, one labelled point
// per layer at its attainable performance. The terminal follows the extension: .png or .svg.
void plot_roofline(const std::filesystem::path& out, double peak_ops_per_s, double bandwidth_gb_per_s,
                   const std::vector<RooflinePoint>& points, const std::string& title);

// One stacked bar per label (a layer), one segment per component.
struct EnergyBar {
  std::string label;
  std::vector<std::pair<std::string, double>> components_pj;
};
void plot_energy_breakdown(const std::filesystem::path& out, const std::vector<EnergyBar>& bars, const std::string& title);

// Lines over a shared x axis (learning curves: one series per metric, x = epoch).
struct Series {
  std::string name;
  std::vector<double> y;  // one value per x
};
void plot_lines(const std::filesystem::path& out, const std::string& xlabel, const std::vector<double>& x,
                const std::vector<Series>& series, const std::string& ylabel, const std::string& title);

// A design-space scatter: every point in grey, the Pareto front's points joined in order of x,
// numbered, and their labels listed below the plot (the image grows with the list). An axis asked to be logarithmic is, when its values are positive and span a decade.
struct ScatterPoint {
  double x = 0, y = 0;
  std::string label;
  bool front = false;
};
void plot_pareto(const std::filesystem::path& out, const std::vector<ScatterPoint>& points, const std::string& xlabel,
                 const std::string& ylabel, bool logx, bool logy, const std::string& title);

}  // namespace bitsim::costmodel
