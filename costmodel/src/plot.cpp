// gnuplot driver: writes data and a script to a private temp directory, runs gnuplot with its
// output going to a temp file beside the target, then renames it into place.
#include "bitsim/costmodel/plot.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

extern char** environ;

namespace bitsim::costmodel {
namespace fs = std::filesystem;

std::string gnuplot_program() {
  const char* env = std::getenv("BITSIM_GNUPLOT");
  return env && *env ? env : "gnuplot";
}

namespace {

// A private directory for the data and script, removed on every path out.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "bitsim-plot-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw PlotError(fmt::format("cannot create a temporary directory: {}", std::strerror(errno)));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// gnuplot single-quoted string: a quote inside is doubled.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  out += '\'';
  return out;
}

// A label safe inside gnuplot's double-quoted data fields.
std::string data_label(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\n' || c == '\r' || c == '\\') ? '_' : c;
  out += '"';
  return out;
}

std::string terminal_for(const fs::path& out, int height = 640) {
  const std::string ext = out.extension().string();
  if (ext == ".png") return fmt::format("set terminal pngcairo size 960,{} noenhanced font 'sans,10'", height);
  if (ext == ".svg") return fmt::format("set terminal svg size 960,{} noenhanced font 'sans,10'", height);
  throw PlotError(fmt::format("plot {}: unsupported extension '{}': use .png or .svg", out.string(), ext));
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  if (!f) throw PlotError(fmt::format("cannot write '{}'", p.string()));
}

std::string first_line(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line.substr(line.find_first_not_of(" \t\r"));
  return "no message";
}

// Runs gnuplot on `body` (everything after terminal and output) and moves the result to `out`.
void render(const fs::path& out, const std::string& body, const TempDir& dir, int height = 640) {
  const std::string terminal = terminal_for(out, height);
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) throw PlotError(fmt::format("plot {}: directory '{}' does not exist", out.string(), parent.string()));
  const fs::path tmp = parent / fmt::format(".{}.tmp-{}", out.filename().string(), getpid());
  const fs::path script = dir.path() / "plot.gp";
  const fs::path log = dir.path() / "gnuplot.log";
  write_file(script, terminal + "\nset output " + quote(tmp.string()) + "\n" + body + "\nset output\n");

  const std::string prog = gnuplot_program();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::string arg0 = prog, arg1 = script.string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, prog.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw PlotError(fmt::format("plot {}: cannot run '{}': {} (install gnuplot-nox, or set BITSIM_GNUPLOT)", out.string(),
                                prog, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::file_size(tmp, ec) > 0 && !ec;
  if (!ok) {
    fs::remove(tmp, ec);
    const std::string why = WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status)) : "killed";
    throw PlotError(fmt::format("plot {}: gnuplot failed ({}): {}", out.string(), why, first_line(log)));
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw PlotError(fmt::format("plot {}: cannot move the finished plot into place: {}", out.string(), ec.message()));
  }
}

}  // namespace

void plot_roofline(const fs::path& out, double peak, double bw_gb_per_s, const std::vector<RooflinePoint>& points,
                   const std::string& title) {
  terminal_for(out);  // reject a bad extension before any work
  if (points.empty()) throw PlotError(fmt::format("plot {}: no layers to plot", out.string()));
  const TempDir dir;
  const double peak_gops = peak / 1e9;
  const double ridge = peak_gops / bw_gb_per_s;  // ops/byte
  double lo = ridge, hi = ridge;
  std::string data, achieved;
  for (const RooflinePoint& p : points) {
    lo = std::min(lo, p.intensity_ops_per_byte);
    hi = std::max(hi, p.intensity_ops_per_byte);
    data += fmt::format("{:.17g} {:.17g} {}\n", p.intensity_ops_per_byte, p.attainable_ops_per_s / 1e9, data_label(p.name));
    if (p.achieved_ops_per_s > 0) achieved += fmt::format("{:.17g} {:.17g}\n", p.intensity_ops_per_byte, p.achieved_ops_per_s / 1e9);
  }
  write_file(dir.path() / "points.dat", data);
  write_file(dir.path() / "achieved.dat", achieved.empty() ? "" : achieved);
  const double xlo = lo / 4, xhi = hi * 4;
  double ylo = std::min(peak_gops, xlo * bw_gb_per_s) / 4;
  const double yhi = peak_gops * 4;
  for (const RooflinePoint& p : points)
    if (p.achieved_ops_per_s > 0) ylo = std::min(ylo, p.achieved_ops_per_s / 1e9 / 2);
  const std::string body = fmt::format(
      "set title {}\n"
      "set logscale xy\n"
      "set xlabel 'arithmetic intensity (ops/byte)'\n"
      "set ylabel 'attainable performance (GOPS)'\n"
      "set grid\n"
      "set key left top\n"
      "set xrange [{:.17g}:{:.17g}]\n"
      "set yrange [{:.17g}:{:.17g}]\n"
      "set samples 400\n"
      "peak = {:.17g}\nbw = {:.17g}\n"
      "roof(x) = x * bw < peak ? x * bw : peak\n"
      "plot roof(x) with lines lw 2 lc rgb '#1f4e79' title sprintf('roofline: %.4g GOPS peak, %.4g GB/s', peak, bw), \\\n"
      "  {} using 1:2 with points pt 7 ps 1.4 lc rgb '#c0392b' title 'layers (attainable)', \\\n"
      "  {} using 1:2:3 with labels offset char 1,1 left notitle{}\n",
      quote(title), xlo, xhi, ylo, yhi, peak_gops, bw_gb_per_s, quote((dir.path() / "points.dat").string()),
      quote((dir.path() / "points.dat").string()),
      achieved.empty() ? std::string()
                       : fmt::format(", \\\n  {} using 1:2 with points pt 6 ps 1.4 lc rgb '#27ae60' title 'layers (achieved)'",
                                     quote((dir.path() / "achieved.dat").string())));
  render(out, body, dir);
}

void plot_energy_breakdown(const fs::path& out, const std::vector<EnergyBar>& bars, const std::string& title) {
  terminal_for(out);
  if (bars.empty()) throw PlotError(fmt::format("plot {}: no bars to plot", out.string()));
  const TempDir dir;
  // Components in first-seen order; a bar without one contributes 0 to it.
  std::vector<std::string> comps;
  double max_total = 0;
  for (const EnergyBar& b : bars) {
    double total = 0;
    for (const auto& [name, pj] : b.components_pj) {
      if (std::find(comps.begin(), comps.end(), name) == comps.end()) comps.push_back(name);
      total += pj;
    }
    max_total = std::max(max_total, total);
  }
  // The largest unit in which the tallest bar is at least 1.
  const auto [unit, scale] = max_total >= 1e12  ? std::pair("J", 1e-12)
                             : max_total >= 1e9 ? std::pair("mJ", 1e-9)
                             : max_total >= 1e6 ? std::pair("uJ", 1e-6)
                             : max_total >= 1e3 ? std::pair("nJ", 1e-3)
                                                : std::pair("pJ", 1.0);
  std::string data = "\"label\"";
  for (const auto& c : comps) {
    data += ' ';
    data += data_label(c);
  }
  data += "\n";
  for (const EnergyBar& b : bars) {
    data += data_label(b.label);
    for (const auto& c : comps) {
      double v = 0;
      for (const auto& [name, pj] : b.components_pj)
        if (name == c) v += pj;
      data += fmt::format(" {:.17g}", v * scale);
    }
    data += "\n";
  }
  write_file(dir.path() / "bars.dat", data);
  const std::string body = fmt::format(
      "set title {}\n"
      "set style data histograms\n"
      "set style histogram rowstacked\n"
      "set style fill solid 0.85 border -1\n"
      "set boxwidth 0.7\n"
      "set ylabel 'energy ({})'\n"
      "set yrange [0:*]\n"
      "set grid ytics\n"
      "set key outside right top\n"
      "set xtics rotate by -30\n"
      "plot for [i=2:{}] {} using i:xtic(1) title columnheader(i)\n",
      quote(title), unit, comps.size() + 1, quote((dir.path() / "bars.dat").string()));
  render(out, body, dir);
}

void plot_lines(const fs::path& out, const std::string& xlabel, const std::vector<double>& x,
                const std::vector<Series>& series, const std::string& ylabel, const std::string& title) {
  terminal_for(out);
  if (x.empty() || series.empty()) throw PlotError(fmt::format("plot {}: nothing to plot", out.string()));
  for (const Series& s : series)
    if (s.y.size() != x.size())
      throw PlotError(fmt::format("plot {}: series '{}' has {} values for {} x values", out.string(), s.name, s.y.size(), x.size()));
  const TempDir dir;
  std::string data = "\"x\"";
  for (const Series& s : series) data += ' ' + data_label(s.name);
  data += "\n";
  for (std::size_t i = 0; i < x.size(); ++i) {
    data += fmt::format("{:.17g}", x[i]);
    for (const Series& s : series) data += fmt::format(" {:.17g}", s.y[i]);
    data += "\n";
  }
  write_file(dir.path() / "lines.dat", data);
  // Whole-number x (epochs) gets whole-number tics, about ten of them.
  std::string xtics;
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  if (std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v) && v == std::floor(v); }) && *hi > *lo)
    xtics = fmt::format("set xtics {}\n", std::max(1.0, std::ceil((*hi - *lo) / 10)));
  const std::string body = fmt::format(
      "set title {}\n"
      "set xlabel {}\n"
      "set ylabel {}\n"
      "{}"
      "set grid\n"
      "set key outside right top\n"
      "plot for [i=2:{}] {} using 1:i with linespoints lw 2 title columnheader(i)\n",
      quote(title), quote(xlabel), quote(ylabel), xtics, series.size() + 1, quote((dir.path() / "lines.dat").string()));
  render(out, body, dir);
}

void plot_pareto(const fs::path& out, const std::vector<ScatterPoint>& points, const std::string& xlabel,
                 const std::string& ylabel, bool logx, bool logy, const std::string& title) {
  terminal_for(out);
  if (points.empty()) throw PlotError(fmt::format("plot {}: no points to plot", out.string()));
  const TempDir dir;
  std::vector<ScatterPoint> front;
  std::string all;
  for (const ScatterPoint& p : points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) throw PlotError(fmt::format("plot {}: a point is not finite", out.string()));
    logx = logx && p.x > 0, logy = logy && p.y > 0;
    all += fmt::format("{:.17g} {:.17g}\n", p.x, p.y);
    if (p.front) front.push_back(p);
  }
  std::sort(front.begin(), front.end(), [](const ScatterPoint& a, const ScatterPoint& b) { return a.x < b.x; });
  // Front points are numbered on the plot and their labels listed below it, one line each (long
  // labels beside the points would run into each other).
  constexpr std::size_t kListed = 40;
  constexpr int kLinePx = 15, kPlotPx = 600;
  const std::size_t lines = std::min(front.size(), kListed) + (front.size() > kListed ? 1 : 0);
  const int height = kPlotPx + kLinePx * int(lines + 2);
  std::string f, legend;
  for (std::size_t i = 0; i < front.size(); ++i) {
    f += fmt::format("{:.17g} {:.17g} {}\n", front[i].x, front[i].y, i + 1);
    if (i < kListed)
      legend += fmt::format("set label {} {} at screen 0.02, screen {:.6f} font ',9'\n", i + 1,
                            quote(fmt::format("{:>3}  {}", i + 1, front[i].label)), double(kLinePx * int(lines - i)) / height);
  }
  if (front.size() > kListed)
    legend += fmt::format("set label {} {} at screen 0.02, screen {:.6f} font ',9'\n", kListed + 1,
                          quote(fmt::format("     ... and {} more (results.csv)", front.size() - kListed)), double(kLinePx) / height);
  write_file(dir.path() / "all.dat", all);
  write_file(dir.path() / "front.dat", f.empty() ? "\n" : f);
  // A log axis only where the data span a decade or more (within one, gnuplot would draw no tics),
  // and then over the data with a margin, not the decades around them.
  auto log_range = [&](bool& on, const char* axis, double ScatterPoint::*v) {
    double lo = points[0].*v, hi = lo;
    for (const ScatterPoint& p : points) lo = std::min(lo, p.*v), hi = std::max(hi, p.*v);
    on = on && hi >= 10 * lo;
    return on ? fmt::format("set logscale {}\nset {}range [{:.17g}:{:.17g}]\n", axis, axis, lo / 1.25, hi * 1.6) : std::string();
  };
  const std::string scale = log_range(logx, "x", &ScatterPoint::x) + log_range(logy, "y", &ScatterPoint::y);
  const std::string body = fmt::format(
      "set title {}\n"
      "{}"
      "set xlabel {}\n"
      "set ylabel {}\n"
      "set grid\n"
      "set key outside right top\n"
      "set bmargin at screen {:.6f}\n"
      "{}"
      "{}"
      "plot {} using 1:2 with points pt 7 ps 0.8 lc rgb '#9e9e9e' title 'design points', \\\n"
      "  {} using 1:2 with linespoints lw 2 pt 7 ps 1.2 lc rgb '#c0392b' title 'Pareto front', \\\n"
      "  {} using 1:2:3 with labels offset char 0.6,0.6 left font ',9' notitle\n",
      quote(title), scale, quote(xlabel), quote(ylabel), double(kLinePx * int(lines + 2) + 45) / height,
      // Linear axes get room for the numbers beside the points.
      fmt::format("set offsets {}, {}, {}, {}\n", logx ? "0" : "graph 0.03", logx ? "0" : "graph 0.06", logy ? "0" : "graph 0.06",
                  logy ? "0" : "graph 0.06"),
      legend, quote((dir.path() / "all.dat").string()), quote((dir.path() / "front.dat").string()),
      quote((dir.path() / "front.dat").string()));
  render(out, body, dir, height);
}

}  // namespace bitsim::costmodel
