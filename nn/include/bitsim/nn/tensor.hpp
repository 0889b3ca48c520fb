// A dense fp32 tensor (row-major, NCHW for images) and the shapes layers pass to each other.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitsim::nn {

using Shape = std::vector<std::int64_t>;

inline std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
std::string to_string(const Shape& s);  // "64x1x28x28"

struct Tensor {
  Shape shape;
  std::vector<float> v;

  Tensor() = default;
  explicit Tensor(Shape s, float fill = 0.0f) : shape(std::move(s)), v(std::size_t(numel(shape)), fill) {}
  std::int64_t size() const { return std::int64_t(v.size()); }
  std::int64_t dim(std::size_t i) const { return shape[i]; }
  float* data() { return v.data(); }
  const float* data() const { return v.data(); }
  void resize(const Shape& s) {
    shape = s;
    v.assign(std::size_t(numel(s)), 0.0f);
  }
  // The shape s for a caller about to write every element: the buffer is kept as it is (a layer's
  // output reuses the last step's memory without a fill), its contents unspecified until written.
  void resize_for_overwrite(const Shape& s) {
    shape = s;
    v.resize(std::size_t(numel(s)));
  }
};

}  // namespace bitsim::nn
