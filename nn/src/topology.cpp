// SCALE-Sim topology files, read as scalesim/topology_utils.py reads them (header line, then one
// layer per line, fields split on commas, a trailing comma, blank lines skipped), but checked:
// every field must be what its column says, and an error names the file, line and column.
#include "bitsim/nn/topology.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <sstream>

#include "bitsim/arith/format.hpp"

namespace bitsim::nn {

namespace {

constexpr std::size_t kMaxNameChars = 256;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The fields of a line, trimmed; a trailing comma (SCALE-Sim writes one after every row) ends the
// row rather than opening an empty last field.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    out.push_back(trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.size() > 1 && out.back().empty()) out.pop_back();
  return out;
}

// A column: the name bitsim writes, and the spellings SCALE-Sim's own files use (lower case).
struct Column {
  std::string_view name;
  std::array<std::string_view, 3> accepted;
};

constexpr std::array<Column, 9> kConvColumns{{
    {"Layer name", {"layer name", "layer", ""}},
    {"IFMAP Height", {"ifmap height", "", ""}},
    {"IFMAP Width", {"ifmap width", "", ""}},
    {"Filter Height", {"filter height", "", ""}},
    {"Filter Width", {"filter width", "", ""}},
    {"Channels", {"channels", "channel", ""}},
    {"Num Filter", {"num filter", "num filters", ""}},
    {"Strides", {"strides", "stride", ""}},
    {"Stride width", {"stride width", "", ""}},  // only in the 9-column form, where column 8 is "Stride height"
}};
constexpr std::array<Column, 4> kGemmColumns{{
    {"Layer", {"layer", "layer name", ""}},
    {"M", {"m", "", ""}},
    {"N", {"n", "", ""}},
    {"K", {"k", "", ""}},
}};

bool accepts(const Column& c, std::string_view field) {
  const std::string f = lower(field);
  return std::any_of(c.accepted.begin(), c.accepted.end(), [&](std::string_view a) { return !a.empty() && a == f; });
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  Topology run() {
    Topology t;
    t.source = source_;
    if (text_.size() > kMaxTopologyBytes)
      fail(0, 0, fmt::format("{} bytes; a topology file is limited to {} bytes", text_.size(), kMaxTopologyBytes));
    if (text_.starts_with("\xEF\xBB\xBF")) text_.remove_prefix(3);  // a UTF-8 byte order mark, as spreadsheets write
    std::string_view line;
    if (!next_line(line) || trim(line).empty())
      fail(1, 0, "empty first line; expected the header 'Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter "
                 "Width, Channels, Num Filter, Strides,' or 'Layer, M, N, K,'");
    header(line, t);
    while (next_line(line)) {
      if (trim(line).empty()) continue;  // SCALE-Sim skips blank lines
      if (t.layers.size() == kMaxTopologyLayers) fail(line_, 0, fmt::format("more than {} layers", kMaxTopologyLayers));
      t.layers.push_back(t.kind == TopologyKind::Gemm ? gemm_row(line) : conv_row(line));
    }
    if (t.layers.empty()) fail(line_ + 1, 0, "no layers after the header; expected at least one");
    return t;
  }

 private:
  bool next_line(std::string_view& line) {
    if (pos_ > text_.size() || (pos_ == text_.size() && line_ > 0)) return false;
    const std::size_t nl = text_.find('\n', pos_);
    line = text_.substr(pos_, nl == std::string_view::npos ? std::string_view::npos : nl - pos_);
    if (line.ends_with('\r')) line.remove_suffix(1);
    pos_ = nl == std::string_view::npos ? text_.size() + 1 : nl + 1;
    ++line_;
    return true;
  }

  [[noreturn]] void fail(int line, std::size_t column, const std::string& what) const {
    std::string where = source_;
    if (line > 0) where += fmt::format(":{}", line);
    if (column > 0) {
      where += fmt::format(":{}", column);
      if (column <= names_.size()) where += fmt::format(" ({})", names_[column - 1]);
    }
    throw TopologyError(fmt::format("{}: {}", where, what));
  }

  void header(std::string_view line, Topology& t) {
    const auto f = fields_of(line);
    const std::string second = f.size() > 1 ? lower(f[1]) : "";
    const bool gemm = second == "m" || f.size() == kGemmColumns.size();
    t.kind = gemm ? TopologyKind::Gemm : TopologyKind::Conv;
    const std::string expected = gemm ? "'Layer, M, N, K,'"
                                      : "'Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                        "Num Filter, Strides,' (or 'Stride height, Stride width,' in place of 'Strides,')";
    if (gemm) {
      for (const Column& c : kGemmColumns) names_.emplace_back(c.name);
    } else {
      for (std::size_t i = 0; i < 8; ++i) names_.emplace_back(kConvColumns[i].name);
      if (f.size() == 9) names_[7] = "Stride height", names_.emplace_back(kConvColumns[8].name);
    }
    if (f.size() != names_.size())
      fail(1, std::min(f.size(), names_.size()) + 1,
           fmt::format("the header has {} columns; expected the {} of {}", f.size(), names_.size(), expected));
    for (std::size_t i = 0; i < f.size(); ++i) {
      const bool ok = gemm ? accepts(kGemmColumns[i], f[i])
                           : (i == 7 && f.size() == 9) ? lower(f[i]) == "stride height"
                                                       : accepts(kConvColumns[i], f[i]);
      if (!ok)
        fail(1, i + 1, fmt::format("header column {} is {}; expected {} (the header {})", i + 1, arith::quoted(f[i]),
                                   arith::quoted(names_[i]), expected));
    }
  }

  std::vector<std::string_view> row_fields(std::string_view line) const {
    auto f = fields_of(line);
    if (f.size() != names_.size())
      fail(line_, std::min(f.size(), names_.size()) + 1,
           fmt::format("{} fields; expected {} ({}, and an optional trailing comma)", f.size(), names_.size(),
                       fmt::join(names_, ", ")));
    if (f[0].empty()) fail(line_, 1, "empty layer name; expected a name");
    if (f[0].size() > kMaxNameChars) fail(line_, 1, fmt::format("a layer name of {} characters; at most {}", f[0].size(), kMaxNameChars));
    return f;
  }

  std::int64_t integer(const std::vector<std::string_view>& f, std::size_t i) const {
    const std::string_view s = f[i];
    std::int64_t v = 0;
    bool ok = !s.empty() && s.size() <= 9;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) ok = false;
      if (ok) v = v * 10 + (c - '0');
    }
    if (!ok || v < 1 || v > kMaxTopologyDim)
      fail(line_, i + 1, fmt::format("{}; expected a positive integer up to {}", arith::quoted(s), kMaxTopologyDim));
    return v;
  }

  void check_macs(const TopologyLayer& l) const {
    std::int64_t mk = 0, mkn = 0, all = 0;
    if (__builtin_mul_overflow(l.gemm.m, l.gemm.k, &mk) || __builtin_mul_overflow(mk, l.gemm.n, &mkn) ||
        __builtin_mul_overflow(mkn, l.repeat, &all) || all > kMaxTopologyLayerMacs)
      fail(line_, 0, fmt::format("layer {} has {:.4g} MACs; a layer is limited to {:.4g} (2^44) MACs per image",
                                 arith::quoted(l.name), double(l.gemm.m) * double(l.gemm.k) * double(l.gemm.n) * double(l.repeat),
                                 double(kMaxTopologyLayerMacs)));
  }

  TopologyLayer gemm_row(std::string_view line) const {
    const auto f = row_fields(line);
    TopologyLayer l;
    l.name = std::string(f[0]);
    l.line = line_;
    // SCALE-Sim: M output rows, N output columns (filters), K the reduction (topology_utils.py,
    // load_arrays_gemm: IFMAP M x K, filter 1 x K, N filters).
    l.gemm = {integer(f, 1), integer(f, 3), integer(f, 2)};
    check_macs(l);
    return l;
  }

  TopologyLayer conv_row(std::string_view line) const {
    const auto f = row_fields(line);
    TopologyLayer l;
    l.name = std::string(f[0]);
    l.line = line_;
    l.is_conv = true;
    const std::int64_t ih = integer(f, 1), iw = integer(f, 2), fh = integer(f, 3), fw = integer(f, 4);
    const std::int64_t channels = integer(f, 5), filters = integer(f, 6), stride = integer(f, 7);
    if (f.size() == 9) {
      const std::int64_t stride_w = integer(f, 8);
      if (stride_w != stride)
        fail(line_, 9, fmt::format("stride height {} and width {} differ; bitsim's convolutions have one stride", stride, stride_w));
    }
    if (fh > ih) fail(line_, 4, fmt::format("filter height {} is larger than the IFMAP height {}", fh, ih));
    if (fw > iw) fail(line_, 5, fmt::format("filter width {} is larger than the IFMAP width {}", fw, iw));
    // SCALE-Sim (load_arrays_conv): a name containing "DP" is depthwise, run as Channels layers of
    // one channel each.
    l.depthwise = l.name.find("DP") != std::string::npos;
    l.repeat = l.depthwise ? channels : 1;
    l.ifmap_h = ih, l.ifmap_w = iw;
    // SCALE-Sim's ceil((IFMAP - filter + stride) / stride) outputs a side: the input extended so
    // that (extent - filter) is a multiple of the stride. The filter fits, so the output is not empty.
    const auto extent = [&](std::int64_t in, std::int64_t f) { return in + (stride - (in - f) % stride) % stride; };
    l.conv = sim::ConvShape{1, l.depthwise ? 1 : channels, extent(ih, fh), extent(iw, fw), filters, fh, fw, stride, 0};
    l.gemm = {l.conv.out_height() * l.conv.out_width(), l.conv.in_channels * fh * fw, filters};
    check_macs(l);
    return l;
  }

  std::string_view text_;
  const std::string& source_;
  std::vector<std::string> names_;
  std::size_t pos_ = 0;
  int line_ = 0;
};

}  // namespace

std::int64_t Topology::macs() const {
  std::int64_t s = 0;
  for (const TopologyLayer& l : layers) s += l.macs();
  return s;
}

Topology parse_topology(std::string_view text, const std::string& source) { return Parser(text, source).run(); }

Topology load_topology(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TopologyError(fmt::format("{}: cannot read the topology file", path));
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, std::size_t(in.gcount()));
    if (text.size() > kMaxTopologyBytes)
      throw TopologyError(fmt::format("{}: larger than {} bytes; a topology file is limited to that", path, kMaxTopologyBytes));
  }
  if (in.bad()) throw TopologyError(fmt::format("{}: cannot read the topology file", path));
  return parse_topology(text, path);
}

}  // namespace bitsim::nn
