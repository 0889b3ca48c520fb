#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/onnx.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>
#include <toml++/toml.h>


namespace bitsim::nn {

namespace {

// Bounds on what an experiment may ask for: far beyond any network bitsim can train on one
// machine, and small enough that every product of them fits 64 bits.
constexpr std::uintmax_t kMaxFileBytes = 1 << 20;
constexpr std::size_t kMaxOverrideChars = 4096;
constexpr std::size_t kMaxNameChars = 128;
constexpr std::size_t kMaxLayers = 1000;
constexpr std::int64_t kMaxLayerWidth = 1 << 24;
constexpr std::int64_t kMaxWindow = 1 << 16;
constexpr std::int64_t kMaxBatch = 1 << 20;

// Reads a TOML table against a fixed set of keys: every value is checked for its type, and a key
// not in the set is an error, so a typo never falls back to a default silently.
class Reader {
 public:
  Reader(const toml::table& t, std::string file, std::string prefix) : t_(t), file_(std::move(file)), prefix_(std::move(prefix)) {}
  ~Reader() noexcept(false) {
    if (std::uncaught_exceptions()) return;
    for (const auto& [k, v] : t_)
      if (!seen_.count(std::string(k.str())))
        throw ExperimentError(fmt::format("{}: unknown key {}", file_, arith::quoted(prefix_ + std::string(k.str()))));
  }
  template <class T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = n->value<std::string>()) return void(out = *v);
      fail(key, "a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = n->value<bool>()) return void(out = *v);
      fail(key, "true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (!n->is_integer()) fail(key, "an integer");
      const std::int64_t v = *n->value<std::int64_t>();
      if (v < 0 && std::is_unsigned_v<T>) fail(key, "a non-negative integer");
      if (std::is_signed_v<T> && (v < std::int64_t(std::numeric_limits<T>::min()) || v > std::int64_t(std::numeric_limits<T>::max())))
        fail(key, fmt::format("an integer in [{}, {}]", std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
      out = T(v);
    } else {
      const auto v = n->value<double>();
      if (!v || !std::isfinite(*v)) fail(key, "a finite number");
      out = *v;
    }
  }
  bool has(const char* key) const { return t_.contains(key); }
  // A named setting (settings.hpp): the string, parsed into its enum, or an error listing the names.
  template <class E>
  void get_setting(const char* key, E& out) {
    std::string name(to_string(out));
    get(key, name);
    const std::optional<E> v = parse_setting<E>(name);
    if (!v)
      throw ExperimentError(fmt::format("{}: {}{} {}: expected {}", file_, prefix_, key, arith::quoted(name), setting_names<E>()));
    out = *v;
  }
  const toml::node* node(const char* key) {
    seen_.insert(key);
    return t_.get(key);
  }
  [[noreturn]] void fail(std::string_view key, std::string_view expected) const {
    throw ExperimentError(fmt::format("{}: {}{}: expected {}", file_, prefix_, key, expected));
  }
  const std::string& file() const { return file_; }
  std::string path(std::string_view key) const { return prefix_ + std::string(key) + "."; }

 private:
  const toml::table& t_;
  std::string file_, prefix_;
  std::set<std::string> seen_;
};

const toml::table& as_table(const toml::node* n, Reader& r, const char* key) {
  if (!n->is_table()) r.fail(key, "a table");
  return *n->as_table();
}

// A tensor class: "format" or { format, rounding, overflow, sr_bits }.
void read_class(Reader& r, const char* key, ClassSpec& c) {
  const toml::node* n = r.node(key);
  if (!n) return;
  if (auto s = n->value<std::string>()) {
    c.format = *s;
    return;
  }
  Reader sub(as_table(n, r, key), r.file(), r.path(key));
  sub.get("format", c.format);
  sub.get("rounding", c.rounding);
  sub.get("overflow", c.overflow);
  sub.get("sr_bits", c.sr_bits);
}

void read_numerics(Reader& r, NumericsSpec& n) {
  read_class(r, "weights", n.weights);
  read_class(r, "activations", n.activations);
  read_class(r, "errors", n.errors);
  read_class(r, "gradients", n.gradients);
  read_class(r, "master", n.master);
  read_class(r, "accumulator", n.accumulator);
  read_class(r, "lazy_accumulator", n.lazy_accumulator);
  r.get("max_overflow_rate", n.max_overflow_rate);
  if (!(n.max_overflow_rate >= 0 && n.max_overflow_rate < 1)) r.fail("max_overflow_rate", "a number in [0, 1)");
  r.get("overflow_interval", n.overflow_interval);
  if (n.overflow_interval < 1) r.fail("overflow_interval", "a positive number of steps");
}

// Checks that every class parses, so a bad format is reported with its key and file.
void validate(const NumericsSpec& n, const std::string& file, const std::string& where) {
  auto check = [&](const ClassSpec& c, const char* name) {
    try {
      if (std::string_view(name) == "accumulator") Accumulation::parse(c.format, c.rounding, c.overflow, c.sr_bits);
      else c.numerics();
    } catch (const std::exception& e) {
      throw ExperimentError(fmt::format("{}: {}{}: {}", file, where, name, e.what()));
    }
  };
  check(n.weights, "weights"), check(n.activations, "activations"), check(n.errors, "errors");
  check(n.gradients, "gradients"), check(n.master, "master"), check(n.accumulator, "accumulator");
  // An integer accumulator multiplies fixed-point operands only: W, A and E are the GEMM operands.
  if (!Accumulation::parse(n.accumulator.format, n.accumulator.rounding, n.accumulator.overflow, n.accumulator.sr_bits)
           .format.is_float() && n.accumulator.format != "fp32-reference") {
    for (const auto& [name, c] : {std::pair<const char*, const ClassSpec*>{"weights", &n.weights}, {"activations", &n.activations},
                                  {"errors", &n.errors}}) {
      if (!c->numerics().integer_operands())
        throw ExperimentError(fmt::format("{}: {}accumulator '{}' is an integer accumulator: it needs fixed-point, dfx or "
                                          "binary weights, activations and errors, but {} is '{}'",
                                          file, where, n.accumulator.format, name, c->format));
    }
  }
  // XNOR-Net's activations (binary-scaled: sign(x) times K per GEMM row) are the one row-scaled
  // scheme for activations; errors take per-tensor schemes only.
  for (const auto& [name, c] : {std::pair<const char*, const ClassSpec*>{"activations", &n.activations}, {"errors", &n.errors}}) {
    const Numerics q = c->numerics();
    const bool xnor_activations = q.scheme == Numerics::Scheme::Xnor && std::string_view(name) == "activations";
    if (q.kind == Numerics::Kind::Scaled && (q.scheme == Numerics::Scheme::Xnor || q.scheme == Numerics::Scheme::Ternary) &&
        !xnor_activations)
      throw ExperimentError(fmt::format("{}: {}{}: '{}' scales each row; {} take per-tensor schemes only (binary, "
                                        "dorefa-a<k>{}, a format)", file, where, name, c->format, name,
                                        std::string_view(name) == "activations" ? ", binary-scaled" : ""));
  }
  for (const auto& [name, c] : {std::pair<const char*, const ClassSpec*>{"master", &n.master}, {"weights", &n.weights},
                                {"activations", &n.activations}, {"errors", &n.errors}}) {
    const Numerics q = c->numerics();
    if (q.kind == Numerics::Kind::Scaled && q.scheme == Numerics::Scheme::DorefaG)
      throw ExperimentError(fmt::format("{}: {}{}: dorefa-g<k> quantizes gradients only", file, where, name));
  }
  for (const auto& [name, c] : {std::pair<const char*, const ClassSpec*>{"activations", &n.activations}, {"errors", &n.errors},
                                {"gradients", &n.gradients}}) {
    const Numerics q = c->numerics();
    if (q.kind == Numerics::Kind::Scaled && q.scheme == Numerics::Scheme::Syq)
      throw ExperimentError(fmt::format("{}: {}{}: {} quantizes weights only (its scales are learned parameters)", file,
                                        where, name, c->format));
  }
  // WAGE's quantizers each belong to one class: wage-w<k> weights, wage-a<k> activations, ...
  for (const auto& [name, c, own] : {std::tuple<const char*, const ClassSpec*, Numerics::Scheme>{"weights", &n.weights, Numerics::Scheme::WageW},
                                     {"activations", &n.activations, Numerics::Scheme::WageA},
                                     {"errors", &n.errors, Numerics::Scheme::WageE},
                                     {"gradients", &n.gradients, Numerics::Scheme::WageG}, {"master", &n.master, Numerics::Scheme::Xnor}}) {
    const Numerics q = c->numerics();
    const bool wage = q.scheme == Numerics::Scheme::WageW || q.scheme == Numerics::Scheme::WageA ||
                      q.scheme == Numerics::Scheme::WageE || q.scheme == Numerics::Scheme::WageG;
    if (q.kind == Numerics::Kind::Scaled && wage && q.scheme != own)
      throw ExperimentError(fmt::format("{}: {}{}: {} is WAGE's quantizer of another class (wage-w<k> weights, wage-a<k> "
                                        "activations, wage-e<k> errors, wage-g<k> gradients)", file, where, name, c->format));
  }
  if (n.master.numerics().kind == Numerics::Kind::Scaled)
    throw ExperimentError(fmt::format("{}: {}master: the master weights need a format, not the scheme '{}'", file, where,
                                      n.master.format));
  if (n.master.format == "binary")
    throw ExperimentError(fmt::format("{}: {}master: weights are binarized for the GEMMs (numerics.weights); the master "
                                      "copy the optimizer updates cannot be binary", file, where));
  if (n.lazy_accumulator.format != "none") {
    check(n.lazy_accumulator, "lazy_accumulator");
    if (n.master.numerics().kind != Numerics::Kind::Scalar)
      throw ExperimentError(fmt::format("{}: {}lazy_accumulator needs a scalar master format (e.g. fixed<16,14>), not '{}'",
                                        file, where, n.master.format));
    if (n.lazy_accumulator.numerics().kind != Numerics::Kind::Scalar)
      throw ExperimentError(fmt::format("{}: {}lazy_accumulator: expected a scalar format", file, where));
  }
}

// "a.b.c=value": value is TOML (a number, true, "string", [..]) or else taken as a bare string. A
// part may index an existing array of tables: "model.layers[3].out=32".
void apply_override(toml::table& root, const std::string& kv) {
  if (kv.size() > kMaxOverrideChars)
    throw ExperimentError(fmt::format("bad --set {}: longer than {} characters", arith::quoted(kv), kMaxOverrideChars));
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) throw ExperimentError(fmt::format("bad --set {}: expected key=value", arith::quoted(kv)));
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  auto fail = [&](const std::string& why) { throw ExperimentError(fmt::format("bad --set {}: {}", arith::quoted(kv), why)); };
  // "name[i]" -> the table at index i of array `name` of t.
  auto step = [&](toml::table* t, const std::string& part) -> toml::table* {
    const auto open = part.find('[');
    if (open == std::string::npos) {
      if (!t->contains(part)) t->insert(part, toml::table{});
      toml::table* next = t->get(part)->as_table();
      if (!next) fail(fmt::format("{} is not a table", arith::quoted(part)));
      return next;
    }
    const std::string name = part.substr(0, open), digits = part.substr(open + 1, part.size() - open - 2);
    if (part.back() != ']' || digits.empty() || digits.size() > 6 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail(fmt::format("{}: expected name[index]", arith::quoted(part)));
    toml::array* a = t->contains(name) ? t->get(name)->as_array() : nullptr;
    if (!a) fail(fmt::format("{} is not an array", arith::quoted(name)));
    const std::size_t i = std::stoul(digits);
    if (i >= a->size()) fail(fmt::format("{} has {} entries, no index {}", arith::quoted(name), a->size(), i));
    toml::table* next = a->get(i)->as_table();
    if (!next) fail(fmt::format("{}[{}] is not a table", arith::quoted(name), i));
    return next;
  };
  toml::table* t = &root;
  std::size_t start = 0;
  for (std::size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) t = step(t, key.substr(start, dot - start));
  const std::string leaf = key.substr(start);
  if (leaf.empty() || leaf.find('[') != std::string::npos) fail("expected a key name after the last '.'");
  try {
    toml::table v = toml::parse("v = " + text);
    t->insert_or_assign(leaf, *v.get("v"));
  } catch (const toml::parse_error&) {
    t->insert_or_assign(leaf, text);
  }
}

// The keys each layer type takes besides `type`; any other key on that layer is an error, so a
// setting that would be ignored (an `out` on a relu) is never accepted silently.
const std::set<std::string>& layer_keys(LayerType t) {
  static const std::map<LayerType, std::set<std::string>> keys{
      {LayerType::Linear, {"out", "bias"}},
      {LayerType::Conv2d, {"out", "kernel", "stride", "padding", "bias", "groups"}},
      {LayerType::MaxPool, {"kernel", "stride", "padding"}},
      {LayerType::AvgPool, {"kernel", "stride"}},
      {LayerType::Relu, {}},
      {LayerType::HardTanh, {}},
      {LayerType::Relu6, {}},
      {LayerType::GlobalAvgPool, {}},
      {LayerType::Sign, {}},
      {LayerType::BatchNorm, {"shift", "eps"}},
      {LayerType::Dropout, {"p"}},
      {LayerType::Flatten, {}},
      {LayerType::Residual, {"from"}},
  };
  return keys.at(t);
}

LayerSpec read_layer(const toml::node& ln, const std::string& path, const std::string& where, int index) {
  if (!ln.is_table()) throw ExperimentError(fmt::format("{}: {}: expected a table", path, where));
  const toml::table& table = *ln.as_table();
  Reader l(table, path, where + ".");
  LayerSpec s;
  if (!l.has("type")) l.fail("type", setting_names<LayerType>());
  l.get_setting("type", s.type);
  const std::set<std::string>& allowed = layer_keys(s.type);
  for (const auto& [k, v] : table) {
    const std::string key(k.str());
    if (key != "type" && key != "input" && !allowed.count(key)) {
      std::string takes;
      for (const auto& a : allowed) takes += (takes.empty() ? "" : ", ") + a;
      throw ExperimentError(fmt::format("{}: {}: {} is not a setting of a {} layer (it takes {})", path, where,
                                        arith::quoted(key), to_string(s.type), takes.empty() ? "nothing besides type and input" : takes));
    }
  }
  l.get("out", s.out);
  l.get("kernel", s.kernel);
  l.get("stride", s.stride);
  l.get("padding", s.padding);
  l.get("bias", s.bias);
  l.get("p", s.p);
  l.get("from", s.from);
  l.get("shift", s.shift);
  l.get("groups", s.groups);
  l.get("eps", s.eps);
  if (!(s.eps > 0 && s.eps <= 1)) l.fail("eps", "a number in (0, 1]");
  const bool gemm = s.type == LayerType::Linear || s.type == LayerType::Conv2d;
  const bool windowed = s.type == LayerType::Conv2d || s.type == LayerType::MaxPool || s.type == LayerType::AvgPool;
  if (gemm && !l.has("out")) l.fail("out", "the number of output features or channels");
  if (gemm && (s.out < 1 || s.out > kMaxLayerWidth)) l.fail("out", fmt::format("an integer in [1, {}]", kMaxLayerWidth));
  if (windowed && !l.has("kernel")) l.fail("kernel", "the window size");
  if (windowed && (s.kernel < 1 || s.kernel > kMaxWindow)) l.fail("kernel", fmt::format("an integer in [1, {}]", kMaxWindow));
  if (l.has("stride") && (s.stride < 1 || s.stride > kMaxWindow)) l.fail("stride", fmt::format("an integer in [1, {}]", kMaxWindow));
  if (s.padding < 0 || s.padding > kMaxWindow) l.fail("padding", fmt::format("an integer in [0, {}]", kMaxWindow));
  if (s.type == LayerType::MaxPool && s.padding >= s.kernel) l.fail("padding", fmt::format("less than the kernel ({})", s.kernel));
  if (s.type == LayerType::Dropout && !(s.p >= 0 && s.p < 1)) l.fail("p", "a probability in [0, 1)");
  if (s.type == LayerType::Conv2d && (s.groups < 1 || s.groups > kMaxLayerWidth || s.out % s.groups != 0))
    l.fail("groups", fmt::format("a divisor of out ({}) in [1, {}]", s.out, kMaxLayerWidth));
  l.get("input", s.input);
  if (l.has("input") && (s.input < 0 || s.input >= index))
    l.fail("input", index > 0 ? fmt::format("the index of an earlier layer (0..{}) whose output it reads", index - 1)
                              : std::string("an earlier layer (there is none)"));
  if (s.type == LayerType::Residual && (s.from < 0 || s.from >= index))
    l.fail("from", index > 0 ? fmt::format("the index of an earlier layer (0..{})", index - 1) : std::string("an earlier layer (there is none)"));
  return s;
}

void read_hardware(Reader& h, Experiment& x) {
  const std::string& path = h.file();
  std::string array = "16x16", dataflow = "ws";
  double buffer_kib = 256;
  h.get("array", array);
  h.get("dataflow", dataflow);
  h.get("clock_ghz", x.hardware.clock_ghz);
  h.get("buffer_kib", buffer_kib);
  h.get("dram_bytes_per_cycle", x.hardware.array.dram_bytes_per_cycle);
  h.get("overlap", x.hardware.array.overlap);
  h.get("node_nm", x.hardware.node_nm);
  h.get("table", x.hardware.table);
  std::string mapping(costmodel::to_string(x.hardware.mapping));
  h.get("mapping", mapping);
  try {
    x.hardware.mapping = costmodel::parse_mapping_goal(mapping);
  } catch (const std::invalid_argument& e) {
    throw ExperimentError(fmt::format("{}: hardware.mapping: {}", path, e.what()));
  }
  try {
    const sim::ArrayDims dims = sim::parse_array_dims(array, "hardware.array");
    x.hardware.array.rows = dims.rows, x.hardware.array.cols = dims.cols;
  } catch (const std::invalid_argument& e) {
    throw ExperimentError(fmt::format("{}: {}", path, e.what()));
  }
  try {
    x.hardware.array.dataflow = sim::parse_dataflow(dataflow);
  } catch (const std::invalid_argument& e) {
    throw ExperimentError(fmt::format("{}: hardware.dataflow: {}", path, e.what()));
  }
  constexpr double kMaxBufferKib = double(sim::ArraySpec::kMaxBufferBytes / 1024);
  if (!(buffer_kib * 1024 >= 1) || buffer_kib > kMaxBufferKib)
    h.fail("buffer_kib", fmt::format("a buffer size from 1/1024 (one byte) to {} KiB (1 TiB)", kMaxBufferKib));
  x.hardware.array.buffer_a_bytes = x.hardware.array.buffer_w_bytes = x.hardware.array.buffer_o_bytes =
      std::int64_t(buffer_kib * 1024);
  if (!(x.hardware.clock_ghz > 0) || x.hardware.clock_ghz > 1000) h.fail("clock_ghz", "a clock in (0, 1000] GHz");
  if (x.hardware.array.dram_bytes_per_cycle < 0)
    h.fail("dram_bytes_per_cycle", "a non-negative number of bytes per cycle (0: unlimited)");
  // The cost of a run is computed after training; every piece it needs is checked now.
  try {
    costmodel::check_hardware(x.hardware);
  } catch (const costmodel::CostSetupError& e) {
    throw ExperimentError(fmt::format("{}: hardware.{}: {}", path, e.key, e.what()));
  }
}

}  // namespace

Experiment Experiment::load(const std::string& path, const std::vector<std::string>& overrides) {
  {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(st)) throw ExperimentError(fmt::format("{}: cannot open: no such file", path));
    if (!std::filesystem::is_regular_file(st)) throw ExperimentError(fmt::format("{}: cannot open: not a regular file", path));
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > kMaxFileBytes)
      throw ExperimentError(fmt::format("{}: {} bytes; an experiment file is limited to {} bytes", path, size, kMaxFileBytes));
  }
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    throw ExperimentError(fmt::format("{}:{}:{}: {}", path, src.begin.line, src.begin.column, e.description()));
  }
  for (const auto& kv : overrides) apply_override(root, kv);

  Experiment x;
  x.source = path;
  Reader r(root, path, "");
  r.get("name", x.name);
  if (x.name.empty() || x.name.size() > kMaxNameChars ||
      !std::all_of(x.name.begin(), x.name.end(), [](char c) { return c >= 0x20 && c < 0x7f; }))
    r.fail("name", fmt::format("1 to {} printable ASCII characters, got {}", kMaxNameChars, arith::quoted(x.name)));
  r.get("seed", x.seed);
  if (const toml::node* n = r.node("data")) {
    Reader d(as_table(n, r, "data"), path, "data.");
    d.get_setting("dataset", x.data.dataset);
    d.get("dir", x.data.dir);
    d.get("train_limit", x.data.train_limit);
    d.get("test_limit", x.data.test_limit);
    d.get("synthetic_train", x.data.synthetic_train);
    d.get("synthetic_test", x.data.synthetic_test);
    if (x.data.train_limit < 0) d.fail("train_limit", "a positive number of examples, or 0 for all");
    if (x.data.test_limit < 0) d.fail("test_limit", "a positive number of examples, or 0 for all");
    constexpr std::int64_t kMaxSynthetic = 1'000'000;
    if (x.data.synthetic_train < 1 || x.data.synthetic_train > kMaxSynthetic)
      d.fail("synthetic_train", fmt::format("a number of training examples in [1, {}]", kMaxSynthetic));
    if (x.data.synthetic_test < 1 || x.data.synthetic_test > kMaxSynthetic)
      d.fail("synthetic_test", fmt::format("a number of test examples in [1, {}]", kMaxSynthetic));
  }

  const toml::node* model = r.node("model");
  if (!model) throw ExperimentError(fmt::format("{}: missing [model] with its layers", path));
  {
    Reader m(as_table(model, r, "model"), path, "model.");
    m.get_setting("loss", x.loss);
    const toml::node* layers = m.node("layers");
    std::string onnx;
    m.get("onnx", onnx);
    if (m.has("onnx")) {
      if (layers) m.fail("layers", "nothing beside model.onnx (the model file gives the layers)");
      // A relative path is relative to the experiment file, as a sweep's experiment is to the sweep.
      const std::filesystem::path p = std::filesystem::path(onnx).is_relative() ? std::filesystem::path(path).parent_path() / onnx : std::filesystem::path(onnx);
      try {
        x.onnx = std::make_shared<const OnnxModel>(load_onnx(p.string()));
      } catch (const OnnxError& e) {
        throw ExperimentError(fmt::format("{}: model.onnx: {}", path, e.what()));
      }
      x.layers = x.onnx->layers;
    }
    if (!x.onnx) {
      if (!layers || !layers->is_array() || layers->as_array()->empty())
        m.fail("layers", "a non-empty array of layer tables (or model.onnx, a model file)");
      if (layers->as_array()->size() > kMaxLayers) m.fail("layers", fmt::format("at most {} layers", kMaxLayers));
      for (const toml::node& ln : *layers->as_array()) {
        const int i = int(x.layers.size());
        x.layers.push_back(read_layer(ln, path, fmt::format("model.layers[{}]", i), i));
      }
    }
  }

  if (const toml::node* n = r.node("train")) {
    Reader t(as_table(n, r, "train"), path, "train.");
    t.get("epochs", x.epochs);
    t.get("batch", x.batch);
    t.get_setting("optimizer", x.optimizer.kind);
    t.get("lr", x.optimizer.lr);
    t.get("momentum", x.optimizer.momentum);
    t.get("beta1", x.optimizer.beta1);
    t.get("beta2", x.optimizer.beta2);
    t.get("weight_decay", x.optimizer.weight_decay);
    t.get("clip", x.optimizer.clip);
    t.get_setting("schedule", x.optimizer.schedule);
    t.get_setting("lr_scale", x.optimizer.lr_scale);
    t.get("step_gamma", x.optimizer.step_gamma);
    t.get("step_epochs", x.optimizer.step_epochs);
    if (const toml::node* ls = t.node("loss_scale")) {
      if (auto v = ls->value<std::string>(); v && *v == "dynamic") {
        x.dynamic_loss_scale = true;
        x.loss_scale = 65536;
      } else if (auto d = ls->value<double>()) {
        x.loss_scale = *d;
      } else {
        t.fail("loss_scale", "a positive number or \"dynamic\"");
      }
      if (!(x.loss_scale > 0) || !std::isfinite(x.loss_scale)) t.fail("loss_scale", "a positive number or \"dynamic\"");
    }
    if (x.epochs < 1 || x.epochs > 100'000) t.fail("epochs", "an integer in [1, 100000]");
    if (x.batch < 1 || x.batch > kMaxBatch) t.fail("batch", fmt::format("an integer in [1, {}]", kMaxBatch));
    if (!(x.optimizer.lr > 0)) t.fail("lr", "a positive finite number");
    if (!(x.optimizer.momentum >= 0 && x.optimizer.momentum < 1)) t.fail("momentum", "a number in [0, 1)");
    if (!(x.optimizer.beta1 >= 0 && x.optimizer.beta1 < 1)) t.fail("beta1", "a number in [0, 1)");
    if (!(x.optimizer.beta2 >= 0 && x.optimizer.beta2 < 1)) t.fail("beta2", "a number in [0, 1)");
    if (!(x.optimizer.weight_decay >= 0)) t.fail("weight_decay", "a non-negative number");
    if (!(x.optimizer.clip >= 0)) t.fail("clip", "a positive clipping bound, or 0 for none");
    if (!(x.optimizer.step_gamma > 0)) t.fail("step_gamma", "a positive number");
    if (x.optimizer.step_epochs < 1) t.fail("step_epochs", "a positive integer");
  }

  if (const toml::node* n = r.node("numerics")) {
    Reader nr(as_table(n, r, "numerics"), path, "numerics.");
    read_numerics(nr, x.numerics);
    nr.get("classifier_rule_alpha", x.classifier_rule_alpha);
    if (x.classifier_rule_alpha < 0 || x.classifier_rule_alpha >= 1)
      nr.fail("classifier_rule_alpha", "a number in (0, 1), or 0 for off");
    std::string test_weights = "quantized";
    nr.get("test_weights", test_weights);
    if (test_weights != "quantized" && test_weights != "master")
      nr.fail("test_weights", fmt::format("quantized or master, got {}", arith::quoted(test_weights)));
    x.test_with_master_weights = test_weights == "master";
    if (const toml::node* lay = nr.node("layer")) {
      if (!lay->is_array()) nr.fail("layer", "an array of tables ([[numerics.layer]])");
      int i = 0;
      for (const toml::node& ln : *lay->as_array()) {
        const std::string where = fmt::format("numerics.layer[{}].", i++);
        if (!ln.is_table()) throw ExperimentError(fmt::format("{}: {}: expected a table", path, where));
        Reader lr(*ln.as_table(), path, where);
        constexpr int kMissing = std::numeric_limits<int>::min();
        int index = kMissing;
        lr.get("index", index);
        if (index != kMissing && index < 0) index += int(x.layers.size());  // -1: the last layer
        if (index < 0 || index >= int(x.layers.size()))
          throw ExperimentError(fmt::format("{}: {}index: expected a layer index in [0, {}) or -1 for the last", path, where, x.layers.size()));
        NumericsSpec s = x.numerics;
        read_numerics(lr, s);
        x.layer_numerics[index] = s;
      }
    }
  }
  validate(x.numerics, path, "numerics.");
  for (const auto& [i, s] : x.layer_numerics) validate(s, path, fmt::format("numerics.layer index {}: ", i));
  if (x.test_with_master_weights) {
    std::vector<const NumericsSpec*> all{&x.numerics};
    for (const auto& [i, s] : x.layer_numerics) all.push_back(&s);
    for (const NumericsSpec* s : all)
      if (!Accumulation::parse(s->accumulator.format, s->accumulator.rounding, s->accumulator.overflow, s->accumulator.sr_bits).format.is_float() &&
          s->accumulator.format != "fp32-reference")
        throw ExperimentError(fmt::format("{}: numerics.test_weights = \"master\" evaluates with the float master weights: it needs a "
                                          "float accumulator, not '{}'", path, s->accumulator.format));
  }
  if (x.optimizer.clip > 0 && x.numerics.lazy_accumulator.format != "none")
    throw ExperimentError(fmt::format("{}: train.clip and numerics.lazy_accumulator cannot be combined", path));
  // WAGE's G is its optimizer: train.optimizer = "wage" with gradients = "wage-g<k>", everywhere.
  const Numerics g = x.numerics.gradients.numerics();
  const bool wage_g = g.kind == Numerics::Kind::Scaled && g.scheme == Numerics::Scheme::WageG;
  if (x.optimizer.kind == OptimizerKind::Wage) {
    if (!wage_g)
      throw ExperimentError(fmt::format("{}: train.optimizer 'wage' quantizes the gradients itself: it needs numerics.gradients = "
                                        "\"wage-g<k>\", not '{}'", path, x.numerics.gradients.format));
    for (const auto& [i, s] : x.layer_numerics)
      if (s.gradients.format != x.numerics.gradients.format)
        throw ExperimentError(fmt::format("{}: numerics.layer index {}: gradients: the wage optimizer takes one wage-g<k> for "
                                          "every layer ('{}')", path, i, x.numerics.gradients.format));
    if (!x.numerics.master.numerics().is_fp32() || x.numerics.lazy_accumulator.format != "none")
      throw ExperimentError(fmt::format("{}: train.optimizer 'wage' keeps its weights on its own grid: numerics.master must be "
                                        "fp32 and numerics.lazy_accumulator none", path));
    x.optimizer.wage_bits = g.bits;
  } else {
    auto uses_wage_g = [](const NumericsSpec& s) {
      const Numerics q = s.gradients.numerics();
      return q.kind == Numerics::Kind::Scaled && q.scheme == Numerics::Scheme::WageG;
    };
    bool any = uses_wage_g(x.numerics);
    for (const auto& [i, s] : x.layer_numerics) any = any || uses_wage_g(s);
    if (any) throw ExperimentError(fmt::format("{}: numerics.gradients: wage-g<k> needs train.optimizer = \"wage\"", path));
  }

  const toml::node* hw = r.node("hardware");
  const toml::table empty;
  Reader h(hw ? as_table(hw, r, "hardware") : empty, path, "hardware.");
  read_hardware(h, x);
  return x;
}

int Experiment::classifier_layer() const {
  for (int i = int(layers.size()); i-- > 0;)
    if (layers[std::size_t(i)].type == LayerType::Linear || layers[std::size_t(i)].type == LayerType::Conv2d) return i;
  return -1;
}

int Experiment::classifier_bits() const {
  const int c = classifier_layer();
  if (classifier_rule_alpha <= 0 || c < 0) return 0;
  const double classes = double(layers[std::size_t(c)].out);
  if (classes < 2) return 0;
  return int(std::floor(std::log2(classes - 1) + std::log2(2 / classifier_rule_alpha))) + 1;
}

namespace {
// At least `bits` bits: fixed<wl,fl> keeps its integer bits and gains fraction bits; dfx widens its
// element; other formats are left alone.
Numerics widen(Numerics n, int bits) {
  if (n.kind == Numerics::Kind::Scalar && !n.format.is_float() && n.format.wl < bits)
    n.format = arith::Format::fixed(bits, n.format.fl + bits - n.format.wl, n.format.is_signed);
  else if (n.kind == Numerics::Kind::Block && n.block.scaling == arith::BlockScaling::DynamicFixed && n.block.element.wl < bits)
    n.block = arith::BlockFormat::dynamic_fixed(bits, n.block.grouping, n.block.block_size);
  return n;
}
}  // namespace

LayerNumerics Experiment::layer(int i) const {
  const auto it = layer_numerics.find(i);
  const NumericsSpec& s = it != layer_numerics.end() ? it->second : numerics;
  LayerNumerics n{s.of(s.weights), s.of(s.activations), s.of(s.errors), s.of(s.gradients),
                  Accumulation::parse(s.accumulator.format, s.accumulator.rounding, s.accumulator.overflow, s.accumulator.sr_bits),
                  numerics.of(numerics.master)};
  if (const int bits = classifier_bits(); bits > 0 && i == classifier_layer()) {
    n.weights = widen(n.weights, bits), n.activations = widen(n.activations, bits);
    n.errors = widen(n.errors, bits), n.gradients = widen(n.gradients, bits);
  }
  return n;
}

namespace {
nlohmann::json class_json(const ClassSpec& c) {
  return {{"format", c.format}, {"rounding", c.rounding}, {"overflow", c.overflow}, {"sr_bits", c.sr_bits}};
}
nlohmann::json numerics_json(const NumericsSpec& n) {
  return {{"weights", class_json(n.weights)}, {"activations", class_json(n.activations)}, {"errors", class_json(n.errors)},
          {"gradients", class_json(n.gradients)}, {"master", class_json(n.master)}, {"accumulator", class_json(n.accumulator)},
          {"lazy_accumulator", class_json(n.lazy_accumulator)}, {"max_overflow_rate", n.max_overflow_rate},
          {"overflow_interval", n.overflow_interval}};
}
}  // namespace

nlohmann::json Experiment::to_json() const {
  nlohmann::json layers_j = nlohmann::json::array();
  for (const auto& l : layers)
    layers_j.push_back({{"type", to_string(l.type)}, {"out", l.out}, {"kernel", l.kernel}, {"stride", l.stride},
                        {"padding", l.padding}, {"bias", l.bias}, {"p", l.p}, {"from", l.from}, {"shift", l.shift},
                        {"groups", l.groups}, {"input", l.input}, {"eps", l.eps}, {"name", l.name}});
  nlohmann::json overrides = nlohmann::json::object();
  for (const auto& [i, s] : layer_numerics) overrides[std::to_string(i)] = numerics_json(s);
  const auto& a = hardware.array;
  return {{"name", name}, {"source", source}, {"seed", seed},
          {"data", {{"dataset", to_string(data.dataset)}, {"dir", data.dir}, {"train_limit", data.train_limit}, {"test_limit", data.test_limit},
                    {"synthetic_train", data.synthetic_train}, {"synthetic_test", data.synthetic_test}}},
          {"model", {{"loss", to_string(loss)}, {"layers", layers_j}, {"onnx", onnx ? onnx->path : ""}}},
          {"train", {{"epochs", epochs}, {"batch", batch}, {"optimizer", to_string(optimizer.kind)}, {"lr", optimizer.lr},
                     {"momentum", optimizer.momentum}, {"beta1", optimizer.beta1}, {"beta2", optimizer.beta2},
                     {"weight_decay", optimizer.weight_decay}, {"clip", optimizer.clip}, {"schedule", to_string(optimizer.schedule)}, {"lr_scale", to_string(optimizer.lr_scale)},
                     {"step_gamma", optimizer.step_gamma}, {"step_epochs", optimizer.step_epochs}, {"loss_scale", loss_scale}, {"dynamic_loss_scale", dynamic_loss_scale}}},
          {"numerics", numerics_json(numerics)},
          {"classifier_rule", {{"alpha", classifier_rule_alpha}, {"bits", classifier_bits()}, {"layer", classifier_layer()}}},
          {"test_weights", test_with_master_weights ? "master" : "quantized"},
          {"layer_numerics", overrides},
          {"hardware", {{"array", fmt::format("{}x{}", a.rows, a.cols)}, {"dataflow", std::string(sim::to_string(a.dataflow))},
                        {"overlap", a.overlap}, {"clock_ghz", hardware.clock_ghz}, {"buffer_bytes", a.buffer_a_bytes},
                        {"dram_bytes_per_cycle", a.dram_bytes_per_cycle}, {"node_nm", hardware.node_nm}, {"table", hardware.table},
                        {"mapping", std::string(costmodel::to_string(hardware.mapping))}}}};
}

}  // namespace bitsim::nn
