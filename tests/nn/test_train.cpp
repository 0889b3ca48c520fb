// Layers' gradients against finite differences, and training runs: identical results for any
// thread count, a resumed run equal to an uninterrupted one, and experiment-file errors that name
// the file and the key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "bitsim/arith/accumulator.hpp"
#include "bitsim/nn/cost.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/trainer.hpp"
#include "temp_dir.hpp"

using namespace bitsim::nn;
namespace arith = bitsim::arith;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A checkpoint's parameters and optimizer state: what follows the JSON header (whose metrics
// include wall-clock times).
std::string checkpoint_state(const fs::path& p) {
  const std::string s = read_file(p);
  std::uint64_t len = 0;
  std::memcpy(&len, s.data() + 8, sizeof len);
  // After the header (which holds timings) and before the CRC-32 (which covers the header too).
  return s.substr(16 + len, s.size() - 16 - len - 4);
}

// A small CNN on synthetic 28x28 data, with the numerics given.
std::string experiment_text(const std::string& numerics, int epochs = 1) {
  return R"(name = "small"
seed = 5
[data]
dataset = "synthetic"
synthetic_train = 300
synthetic_test = 100
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 5, stride = 2, padding = 1 },
  { type = "batchnorm" },
  { type = "relu" },
  { type = "maxpool", kernel = 2 },
  { type = "flatten" },
  { type = "dropout", p = 0.1 },
  { type = "linear", out = 10 },
]
[train]
epochs = )" + std::to_string(epochs) + R"(
batch = 32
optimizer = "adam"
lr = 0.01
[numerics]
)" + numerics;
}

const char* kInt8 = R"(weights = "dfx<8,channel>"
activations = "dfx<8>"
errors = { format = "dfx<8>", rounding = "stochastic" }
gradients = { format = "dfx<8>", rounding = "stochastic" }
accumulator = "int<32>"
)";
const char* kFp8 = R"(weights = "fp8e4m3"
activations = "fp8e4m3"
errors = { format = "fp8e5m2", rounding = "stochastic" }
accumulator = { format = "fp16", rounding = "nearest-even" }
)";

// SYQ's learned per-row scales beside XNOR-Net's K on the activations.
const char* kSyqXnor = R"(weights = "syq-ternary<row>"
activations = "binary-scaled"
errors = "dfx<8>"
accumulator = "int<32>"
[[numerics.layer]]
index = 0
activations = "dfx<8>"
)";

// Courbariaux et al. 2014: 10-bit propagations, 12-bit parameter updates, the overflow-rate rule
// moving each tensor's exponent every 3 steps.
const char* kRate = R"(weights = "dfx<10,rate>"
activations = "dfx<10,rate>"
errors = "dfx<10,rate>"
gradients = "dfx<12,rate>"
master = "dfx<12,rate>"
accumulator = "int<32>"
max_overflow_rate = 0.001
overflow_interval = 3
)";

// Sum of (y * r) over the output of one layer for input x, and its gradients by back-propagation.
double probe(Layer& l, const Tensor& x, const Tensor& r, Tensor* dx) {
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  Tensor y;
  l.forward(x, y, ctx);
  double s = 0;
  for (std::size_t i = 0; i < y.v.size(); ++i) s += double(y.v[i]) * r.v[i];
  if (dx) l.backward(r, *dx, true, ctx);
  return s;
}

void gradient_check(std::unique_ptr<Layer> l, const Shape& in) {
  std::mt19937_64 rng(3);
  const Shape out = l->init(in, rng);
  std::normal_distribution<float> d(0, 1);
  Tensor x(in), r(out), dx;
  for (auto& v : x.v) v = d(rng);
  for (auto& v : r.v) v = d(rng);
  probe(*l, x, r, &dx);
  const float h = 1e-2f;
  for (std::size_t i = 0; i < x.v.size(); i += 1 + x.v.size() / 40) {
    Tensor xp = x, xm = x;
    xp.v[i] += h, xm.v[i] -= h;
    const double num = (probe(*l, xp, r, nullptr) - probe(*l, xm, r, nullptr)) / (2 * h);
    EXPECT_NEAR(dx.v[i], num, 2e-2 * (1 + std::abs(num))) << l->type() << " input " << i;
  }
  for (Param* p : l->params())
    for (std::size_t i = 0; i < p->value.v.size(); i += 1 + p->value.v.size() / 20) {
      probe(*l, x, r, &dx);
      const float g = p->grad.v[i], w = p->value.v[i];
      p->value.v[i] = w + h;
      const double up = probe(*l, x, r, nullptr);
      p->value.v[i] = w - h;
      const double down = probe(*l, x, r, nullptr);
      p->value.v[i] = w;
      EXPECT_NEAR(g, (up - down) / (2 * h), 2e-2 * (1 + std::abs((up - down) / (2 * h)))) << l->type() << " " << p->name << " " << i;
    }
}

}  // namespace

// im2col copies runs of input rows between zero padding; a direct convolution on small integers
// (whose fp32 sums are exact in any order) must equal it bit for bit, also where the padding
// covers whole kernel rows or columns or a stride skips input.
TEST(NnLayers, Conv2dEqualsDirectConvolution) {
  struct Case {
    std::int64_t out, kernel, stride, pad;
    Shape in;
  };
  for (const Case& t : {Case{3, 3, 2, 1, {2, 2, 7, 6}}, Case{2, 5, 1, 2, {1, 3, 6, 5}}, Case{2, 3, 3, 2, {2, 1, 5, 5}},
                        Case{1, 3, 1, 3, {1, 2, 2, 2}}, Case{4, 1, 2, 0, {1, 3, 5, 4}}}) {
    std::mt19937_64 rng(5);
    auto l = make_conv2d(t.out, t.kernel, t.stride, t.pad);
    const Shape out = l->init(t.in, rng);
    std::uniform_int_distribution<int> small(-4, 4);
    Tensor x(t.in);
    for (auto& v : x.v) v = float(small(rng));
    for (Param* p : l->params())
      for (auto& v : p->value.v) v = float(small(rng));
    const std::vector<float>& w = l->params()[0]->value.v;
    const std::vector<float>& bias = l->params()[1]->value.v;
    Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
    Tensor y;
    l->forward(x, y, ctx);
    ASSERT_EQ(y.shape, out);
    const std::int64_t c = t.in[1], h = t.in[2], wi = t.in[3], k = t.kernel;
    for (std::int64_t b = 0; b < out[0]; ++b)
      for (std::int64_t o = 0; o < out[1]; ++o)
        for (std::int64_t oy = 0; oy < out[2]; ++oy)
          for (std::int64_t ox = 0; ox < out[3]; ++ox) {
            float want = bias[std::size_t(o)];
            for (std::int64_t ci = 0; ci < c; ++ci)
              for (std::int64_t ky = 0; ky < k; ++ky)
                for (std::int64_t kx = 0; kx < k; ++kx) {
                  const std::int64_t iy = oy * t.stride + ky - t.pad, ix = ox * t.stride + kx - t.pad;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= wi) continue;
                  want += w[std::size_t(((o * c + ci) * k + ky) * k + kx)] * x.v[std::size_t(((b * c + ci) * h + iy) * wi + ix)];
                }
            ASSERT_EQ(y.v[std::size_t(((b * out[1] + o) * out[2] + oy) * out[3] + ox)], want)
                << "kernel " << k << " stride " << t.stride << " pad " << t.pad << " at " << b << "," << o << "," << oy << "," << ox;
          }
  }
}

// The bias gradient is each output column's error summed over the rows in row order. Errors of
// mixed magnitude make the fp32 sum depend on that order; widths around the sixteen-column blocks
// and rows below and above sixteen reach both the vector and the element-wise rows of the sum.
TEST(NnLayers, BiasGradientSumsEachColumnInRowOrder) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> exponent(-20, 20);
  for (const std::int64_t out : {1, 6, 15, 16, 17, 33})
    for (const std::int64_t rows : {1, 3, 17, 64}) {
      auto l = make_linear(out);
      l->init({rows, 5}, rng);
      Tensor x({rows, 5}), y, dy({rows, out}), dx;
      for (auto& v : x.v) v = u(rng);
      for (auto& v : dy.v) v = std::ldexp(u(rng), exponent(rng));
      Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
      l->forward(x, y, ctx);
      l->backward(dy, dx, true, ctx);
      std::vector<float> want(std::size_t(out), 0.0f);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < out; ++j) want[std::size_t(j)] += dy.v[std::size_t(r * out + j)];
      EXPECT_EQ(l->params()[1]->grad.v, want) << out << " outputs, " << rows << " rows";
    }
}

// A grouped convolution against its definition, written here directly: output channel o of group
// g = o / (out / G) sums over input channels g C/G .. (g + 1) C/G - 1 only, and backward sends
// each error back through those channels alone. Small integers keep every fp32 sum exact, so
// forward, dX, dW and the bias gradient must equal the direct loops bit for bit.
TEST(NnLayers, GroupedConv2dEqualsDirectGroupedConvolution) {
  struct Case {
    std::int64_t out, kernel, stride, pad, groups;
    Shape in;
  };
  for (const Case& t : {Case{6, 3, 1, 1, 2, {2, 4, 5, 6}}, Case{3, 3, 2, 1, 3, {2, 3, 7, 7}},  // grouped, depthwise
                        Case{4, 5, 1, 2, 2, {1, 2, 6, 5}}, Case{4, 1, 1, 0, 4, {2, 4, 3, 3}}}) {  // multiplier 2, 1x1
    std::mt19937_64 rng(7);
    auto l = make_conv2d(t.out, t.kernel, t.stride, t.pad, true, t.groups);
    const Shape out = l->init(t.in, rng);
    std::uniform_int_distribution<int> small(-3, 3);
    Tensor x(t.in), dy(out), dx;
    for (auto& v : x.v) v = float(small(rng));
    for (auto& v : dy.v) v = float(small(rng));
    for (Param* p : l->params())
      for (auto& v : p->value.v) v = float(small(rng));
    const std::int64_t c = t.in[1], h = t.in[2], wi = t.in[3], k = t.kernel, cg = c / t.groups, og = t.out / t.groups;
    const std::vector<float>& w = l->params()[0]->value.v;
    ASSERT_EQ(std::int64_t(w.size()), t.out * cg * k * k);
    const std::vector<float>& bias = l->params()[1]->value.v;
    Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
    Tensor y;
    l->forward(x, y, ctx);
    l->backward(dy, dx, true, ctx);
    ASSERT_EQ(y.shape, out);
    std::vector<float> want_dx(x.v.size(), 0.0f), want_dw(w.size(), 0.0f), want_db(bias.size(), 0.0f);
    for (std::int64_t b = 0; b < out[0]; ++b)
      for (std::int64_t o = 0; o < out[1]; ++o)
        for (std::int64_t oy = 0; oy < out[2]; ++oy)
          for (std::int64_t ox = 0; ox < out[3]; ++ox) {
            const std::size_t at = std::size_t(((b * out[1] + o) * out[2] + oy) * out[3] + ox);
            float want = bias[std::size_t(o)];
            want_db[std::size_t(o)] += dy.v[at];
            for (std::int64_t ci = 0; ci < cg; ++ci)
              for (std::int64_t ky = 0; ky < k; ++ky)
                for (std::int64_t kx = 0; kx < k; ++kx) {
                  const std::int64_t iy = oy * t.stride + ky - t.pad, ix = ox * t.stride + kx - t.pad;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= wi) continue;
                  const std::size_t wa = std::size_t(((o * cg + ci) * k + ky) * k + kx);
                  const std::size_t xa = std::size_t(((b * c + o / og * cg + ci) * h + iy) * wi + ix);
                  want += w[wa] * x.v[xa];
                  want_dw[wa] += dy.v[at] * x.v[xa];
                  want_dx[xa] += dy.v[at] * w[wa];
                }
            ASSERT_EQ(y.v[at], want) << "groups " << t.groups << " at " << b << "," << o << "," << oy << "," << ox;
          }
    EXPECT_EQ(dx.v, want_dx) << "groups " << t.groups;
    EXPECT_EQ(l->params()[0]->grad.v, want_dw) << "groups " << t.groups;
    EXPECT_EQ(l->params()[1]->grad.v, want_db) << "groups " << t.groups;
  }
  std::mt19937_64 rng(1);
  EXPECT_THROW(make_conv2d(4, 3, 1, 1, true, 3)->init({1, 6, 5, 5}, rng), std::invalid_argument);  // 4 outputs, 3 groups
  EXPECT_THROW(make_conv2d(4, 3, 1, 1, true, 4)->init({1, 6, 5, 5}, rng), std::invalid_argument);  // 6 inputs, 4 groups
}

// A residual block with a projection shortcut (He et al. 2016, option B): the 1x1 stride-2
// convolution reads the block's input (`reads`), and its output is added to the main path's.
// Back-propagation must sum each activation's gradient over every layer that reads it.
TEST(NnLayers, BranchesRouteGradientsToTheOutputTheyRead) {
  Network net;
  net.layers.push_back(make_conv2d(3, 3, 1, 1));     // 0
  net.layers.push_back(make_batchnorm());            // 1: the block's input (smooth: no kink for the differences)
  net.layers.push_back(make_conv2d(4, 3, 2, 1));     // 2: main path
  net.layers.push_back(make_batchnorm());            // 3
  net.layers.push_back(make_conv2d(4, 1, 2, 0));     // 4: the projection, reading layer 1
  net.layers.back()->reads = 1;
  net.layers.push_back(make_residual(3));            // 5: projection + main path
  net.layers.push_back(make_flatten());              // 6
  net.layers.push_back(make_linear(3));              // 7
  net.init({2, 2, 6, 6}, 4);
  EXPECT_EQ(net.input_of(4), 2u);
  EXPECT_EQ(net.shapes()[5], (Shape{2, 4, 3, 3}));
  std::mt19937_64 rng(2);
  std::normal_distribution<float> d(0, 1);
  Tensor x({2, 2, 6, 6}), r({2, 3});
  for (auto& v : x.v) v = d(rng);
  for (auto& v : r.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  auto loss = [&] {
    const Tensor& y = net.forward(x, ctx);
    double s = 0;
    for (std::size_t i = 0; i < y.v.size(); ++i) s += double(y.v[i]) * r.v[i];
    return s;
  };
  // The projection's output is what a lone 1x1 convolution with its weights makes of layer 1's output.
  loss();
  Tensor lone_y;
  {
    auto lone = make_conv2d(4, 1, 2, 0);
    std::mt19937_64 lr(1);
    lone->init({2, 3, 6, 6}, lr);
    for (std::size_t p = 0; p < 2; ++p) lone->params()[p]->value = net.layers[4]->params()[p]->value;
    lone->forward(net.activation(2), lone_y, ctx);
  }
  EXPECT_EQ(lone_y.v, net.activation(5).v);
  for (std::size_t li : {0u, 2u, 4u}) {
    loss();
    net.backward(r, ctx);
    Param& w = *net.layers[li]->params()[0];
    const std::vector<float> g = w.grad.v;
    const float h = 1e-2f;
    for (std::size_t i = 0; i < g.size(); i += 1 + g.size() / 12) {
      const float v = w.value.v[i];
      w.value.v[i] = v + h;
      const double up = loss();
      w.value.v[i] = v - h;
      const double down = loss();
      w.value.v[i] = v;
      EXPECT_NEAR(g[i], (up - down) / (2 * h), 3e-2 * (1 + std::abs((up - down) / (2 * h)))) << "layer " << li << " weight " << i;
    }
  }
  // An output nothing reads, and a layer reading itself or a later one, are refused.
  Network unread;
  unread.layers.push_back(make_linear(4));
  unread.layers.push_back(make_linear(4));
  unread.layers.push_back(make_linear(2));
  unread.layers.back()->reads = 0;  // layer 1's output is never read
  EXPECT_THROW(unread.init({2, 5}, 1), LayerError);
  Network later;
  later.layers.push_back(make_linear(4));
  later.layers.push_back(make_linear(4));
  later.layers.back()->reads = 1;
  EXPECT_THROW(later.init({2, 5}, 1), LayerError);
}

TEST(NnLayers, GradientsMatchFiniteDifferences) {
  gradient_check(make_linear(7), {3, 11});
  gradient_check(make_conv2d(3, 3, 2, 1), {2, 2, 7, 6});
  gradient_check(make_conv2d(4, 3, 1, 1, true, 2), {2, 4, 5, 5});
  gradient_check(make_conv2d(3, 3, 2, 1, true, 3), {2, 3, 6, 6});  // depthwise
  gradient_check(make_avgpool(2), {2, 3, 6, 6});
  gradient_check(make_batchnorm(), {6, 3, 2, 2});
  gradient_check(make_batchnorm(), {8, 5});
  gradient_check(make_hardtanh(), {4, 9});
  gradient_check(make_globalavgpool(), {2, 3, 5, 4});
}

// The layers no finite difference can check: max pooling routes the gradient to the maximum, ReLU
// passes it where x > 0, sign() uses the clipped straight-through estimator.
TEST(NnLayers, PiecewiseLayersRouteGradientsAsDefined) {
  std::mt19937_64 rng(1);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  auto pool = make_maxpool(2);
  pool->init({1, 1, 2, 4}, rng);
  Tensor x({1, 1, 2, 4}), y, dx;
  x.v = {1, 5, -1, -2, 3, 2, -3, -0.5f};
  pool->forward(x, y, ctx);
  EXPECT_EQ(y.v, (std::vector<float>{5, -0.5f}));
  Tensor dy({1, 1, 1, 2});
  dy.v = {10, 20};
  pool->backward(dy, dx, true, ctx);
  EXPECT_EQ(dx.v, (std::vector<float>{0, 10, 0, 0, 0, 0, 0, 20}));

  auto sign = make_sign();
  Tensor s({1, 4}), sy, sd({1, 4}, 1.0f), sdx;
  s.v = {-2, -0.5f, 0, 1.5f};
  sign->forward(s, sy, ctx);
  EXPECT_EQ(sy.v, (std::vector<float>{-1, -1, 1, 1}));
  sign->backward(sd, sdx, true, ctx);
  EXPECT_EQ(sdx.v, (std::vector<float>{0, 1, 1, 0}));

  auto relu6 = make_relu6();
  Tensor r({1, 6}), ry, rd({1, 6}, 1.0f), rdx;
  r.v = {-1, 0, 0.5f, 6, 7, 5.99f};
  relu6->forward(r, ry, ctx);
  EXPECT_EQ(ry.v, (std::vector<float>{0, 0, 0.5f, 6, 6, 5.99f}));
  relu6->backward(rd, rdx, true, ctx);
  EXPECT_EQ(rdx.v, (std::vector<float>{0, 0, 1, 0, 0, 1}));
}

// Max pooling's padding is no input: each window's maximum is over its elements inside the input
// (PyTorch's and ONNX's MaxPool), and the gradient goes to that element.
TEST(NnLayers, PaddedMaxPoolTakesTheMaximumInsideTheInput) {
  std::mt19937_64 rng(6);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  for (const auto& [k, s, p] : {std::tuple{3, 2, 1}, std::tuple{2, 2, 1}, std::tuple{3, 1, 2}}) {
    auto pool = make_maxpool(k, s, p);
    const Shape in{2, 3, 5, 6};
    const Shape out = pool->init(in, rng);
    ASSERT_EQ(out, (Shape{2, 3, (5 + 2 * p - k) / s + 1, (6 + 2 * p - k) / s + 1}));
    std::normal_distribution<float> d(0, 1);
    Tensor x(in), y, dy(out), dx;
    for (auto& v : x.v) v = -10 + d(rng);  // all negative: a padding read as 0 would win
    for (auto& v : dy.v) v = d(rng);
    pool->forward(x, y, ctx);
    pool->backward(dy, dx, true, ctx);
    std::vector<float> want_dx(x.v.size(), 0.0f);
    for (std::int64_t pl = 0; pl < 6; ++pl)
      for (std::int64_t oy = 0; oy < out[2]; ++oy)
        for (std::int64_t ox = 0; ox < out[3]; ++ox) {
          float best = -std::numeric_limits<float>::infinity();
          std::size_t at = 0;
          for (std::int64_t iy = oy * s - p; iy < oy * s - p + k; ++iy)
            for (std::int64_t ix = ox * s - p; ix < ox * s - p + k; ++ix)
              if (iy >= 0 && iy < 5 && ix >= 0 && ix < 6 && x.v[std::size_t((pl * 5 + iy) * 6 + ix)] > best)
                best = x.v[std::size_t((pl * 5 + iy) * 6 + ix)], at = std::size_t((pl * 5 + iy) * 6 + ix);
          const std::size_t o = std::size_t((pl * out[2] + oy) * out[3] + ox);
          ASSERT_EQ(y.v[o], best) << k << "," << s << "," << p;
          want_dx[at] += dy.v[o];
        }
    EXPECT_EQ(dx.v, want_dx);
  }
  EXPECT_THROW(make_maxpool(2, 2, 2)->init({1, 1, 4, 4}, rng), std::invalid_argument);  // padding >= kernel
}

// A max-pool window's first element wins ties and stays when it is NaN; a later NaN never wins.
// The gradient follows the same choice, in every plane.
TEST(NnLayers, MaxPoolTakesTheFirstOfEqualMaxima) {
  std::mt19937_64 rng(1);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  auto pool = make_maxpool(2);
  pool->init({1, 2, 2, 4}, rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x({1, 2, 2, 4}), y, dx;
  x.v = {2, 2, nan, 1, 2, 1, 1, 1,  // plane 0: a tie; a NaN first
         1, nan, 0, 0, 3, 3, 0, -0.0f};  // plane 1: a NaN later; ties, the second at index 12
  pool->forward(x, y, ctx);
  ASSERT_EQ(y.v.size(), 4u);
  EXPECT_EQ(y.v[0], 2);
  EXPECT_TRUE(std::isnan(y.v[1]));
  EXPECT_EQ(y.v[2], 3);
  EXPECT_FALSE(std::signbit(y.v[3]));
  Tensor dy({1, 2, 1, 2});
  dy.v = {1, 2, 3, 4};
  pool->backward(dy, dx, true, ctx);
  std::vector<float> want(16, 0.0f);
  want[0] = 1, want[2] = 2, want[12] = 3, want[10] = 4;
  EXPECT_EQ(dx.v, want);
}

// Same experiment and seed: identical checkpoints and metrics with 1 and 3 threads, in fp32, int8
// (exact int8 GEMMs) and fp8 with an fp16 accumulator (order-faithful GEMMs).
TEST(NnTrain, ResultsDoNotDependOnTheThreadCount) {
  for (const char* numerics : {"accumulator = \"fp32-reference\"\n", kInt8, kFp8, kSyqXnor, kRate}) {
    TempDir t;
    const std::string file = t.write("x.toml", experiment_text(numerics));
    const Experiment x = Experiment::load(file);
    std::string ck[2];
    double acc[2];
    for (int i = 0; i < 2; ++i) {
      set_threads(i == 0 ? 1 : 3);
      const std::string out = (t.path / ("run" + std::to_string(i))).string();
      const RunResult r = train(x, {out, false, {}});
      ck[i] = checkpoint_state(fs::path(out) / "checkpoint.bin");
      acc[i] = r.epochs.back().test_accuracy;
    }
    set_threads(0);
    EXPECT_EQ(acc[0], acc[1]) << numerics;
    EXPECT_TRUE(ck[0] == ck[1]) << numerics;
  }
}

// A run stopped after epoch 1 and resumed reaches the same final state as one that ran through.
// SYQ's learned scales are parameters, saved and restored with their optimizer state.
TEST(NnTrain, ResumedRunEqualsUninterruptedRun) {
  for (const char* numerics : {kInt8, kSyqXnor, kRate}) {
  SCOPED_TRACE(numerics);
  TempDir t;
  const Experiment two = Experiment::load(t.write("two.toml", experiment_text(numerics, 2)));
  const Experiment one = Experiment::load(t.write("one.toml", experiment_text(numerics, 1)));
  const std::string a = (t.path / "a").string(), b = (t.path / "b").string();
  const RunResult full = train(two, {a, false, {}});
  train(one, {b, false, {}});
  const RunResult resumed = train(two, {b, true, {}});
  EXPECT_TRUE(checkpoint_state(fs::path(a) / "checkpoint.bin") == checkpoint_state(fs::path(b) / "checkpoint.bin"));
  ASSERT_EQ(resumed.epochs.size(), 2u);
  EXPECT_EQ(full.epochs[1].test_accuracy, resumed.epochs[1].test_accuracy);
  EXPECT_EQ(full.epochs[1].train_loss, resumed.epochs[1].train_loss);
  // The cost does not depend on where the process started: the resumed process never ran epoch 1's
  // first step, whose dynamic fixed-point formats the cost used to be read from.
  EXPECT_EQ(bitsim::costmodel::to_json(full.cost).dump(), bitsim::costmodel::to_json(resumed.cost).dump());
  EXPECT_GT(full.cost.total.energy_total_pj(), 0);
  EXPECT_TRUE(fs::exists(fs::path(b) / "report.json"));
  EXPECT_TRUE(fs::exists(fs::path(b) / "metrics.csv"));
  }
}

// Training learns: the synthetic blobs are separable, so a few epochs reach high accuracy in fp32,
// in int8 and in Courbariaux et al.'s 10/12-bit dynamic fixed point.
TEST(NnTrain, LearnsSyntheticData) {
  for (const char* numerics : {"accumulator = \"fp32-reference\"\n", kInt8, kRate}) {
    TempDir t;
    const RunResult r = train(Experiment::load(t.write("x.toml", experiment_text(numerics, 3))), {"", false, {}});
    EXPECT_GT(r.epochs.back().test_accuracy, 0.9) << numerics;
    // Counted from the shapes: conv 5x5 stride 2 padding 1 on 28x28 gives 13x13x4 (169 x 4 x 25 =
    // 16900 MACs), pooled to 6x6x4 for the linear layer (144 x 10 = 1440): 18340 per example, over
    // 3 epochs of 300 training examples, and 3 evaluations of the 100 test examples.
    const auto& phase = r.report["cost"]["by_phase"];
    EXPECT_EQ(phase["forward"]["macs"].get<double>(), 3 * 300 * 18340.0) << numerics;
    EXPECT_EQ(phase["backward-data"]["macs"].get<double>(), 3 * 300 * 1440.0) << numerics;
    EXPECT_EQ(phase["inference"]["macs"].get<double>(), 3 * 100 * 18340.0) << numerics;
  }
}

// Experiment files: every mistake is one message naming the file and the key.
TEST(NnExperiment, ErrorsNameTheFileAndTheKey) {
  TempDir t;
  auto error_of = [&](const std::string& text, const std::vector<std::string>& set = {}) {
    const std::string f = t.write("bad.toml", text);
    try {
      Experiment::load(f, set);
    } catch (const ExperimentError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string good = experiment_text(kInt8);
  EXPECT_NE(error_of(good + "bogus = 1\n").find("unknown key 'numerics.bogus'"), std::string::npos);
  EXPECT_NE(error_of(good, {"train.epochs=0"}).find("train.epochs"), std::string::npos);
  EXPECT_NE(error_of(good, {"train.batch=\"many\""}).find("train.batch: expected an integer"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.weights=\"fixed<99,0>\""}).find("weights"), std::string::npos);
  EXPECT_NE(error_of(good, {"data.dataset=\"imagenet\""}).find("data.dataset 'imagenet'"), std::string::npos);
  EXPECT_NE(error_of("name = \"x\"\n").find("missing [model]"), std::string::npos);
  EXPECT_NE(error_of("name = \n").find("bad.toml:1"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers=[{type=\"conv3d\"}]"}).find("type 'conv3d'"), std::string::npos);
  EXPECT_NE(error_of(good, {"hardware.array=\"16\""}).find("hardware.array '16'"), std::string::npos);
  EXPECT_NE(error_of(good, {"hardware.overlap=\"yes\""}).find("hardware.overlap: expected true or false"), std::string::npos);
  EXPECT_EQ(error_of(good, {"hardware.overlap=true"}), "no error");
  EXPECT_NE(error_of(good, {"numerics.errors=\"fp16\""}).find("errors is 'fp16'"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.master=\"binary\""}).find("master"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.errors=\"binary-scaled\""}).find("errors: 'binary-scaled' scales each row"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.activations=\"ternary\""}).find("activations: 'ternary' scales each row"), std::string::npos);
  EXPECT_EQ(error_of(good, {"numerics.activations=\"binary-scaled\""}), "no error");  // XNOR-Net's K
  EXPECT_NE(error_of(good, {"numerics.gradients=\"syq-binary<row>\""}).find("gradients: syq-binary<row> quantizes weights only"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.weights=\"syq-ternary<channel>\""}).find("weights: bad format 'syq-ternary<channel>'"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.max_overflow_rate=1.5"}).find("numerics.max_overflow_rate: expected a number in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.overflow_interval=0"}).find("numerics.overflow_interval"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.weights=\"dfx<8,channel,rate>\""}).find("weights"), std::string::npos);
  EXPECT_EQ(error_of(good, {"numerics.weights=\"dfx<10,rate>\""}), "no error");
  EXPECT_NE(error_of(good, {"train.lr_scale=\"he\""}).find("train.lr_scale 'he': expected none, glorot or glorot-binaryconnect"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers[1].shift=\"yes\""}).find("shift: expected true or false"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers[0].shift=true"}).find("'shift' is not a setting of a conv2d layer"), std::string::npos);
  EXPECT_EQ(error_of(good, {"train.optimizer=\"shift-adamax\"", "train.lr_scale=\"glorot\""}), "no error");
  EXPECT_NE(error_of(good, {"train.optimizer=\"wage\""}).find("train.optimizer 'wage' quantizes the gradients itself"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.gradients=\"wage-g<8>\""}).find("wage-g<k> needs train.optimizer"), std::string::npos);
  EXPECT_NE(error_of(good, {"numerics.activations=\"wage-w<2>\""}).find("activations: wage-w<2> is WAGE's quantizer of another class"),
            std::string::npos);
  EXPECT_EQ(error_of(good, {"train.optimizer=\"wage\"", "numerics.gradients=\"wage-g<8>\""}), "no error");
  EXPECT_EQ(error_of(good, {"train.epochs=2"}), "no error");
  EXPECT_NE(error_of(good, {"model.layers[0].groups=3"}).find("model.layers[0].groups: expected a divisor of out (4)"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers[3].groups=2"}).find("'groups' is not a setting of a maxpool layer"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers[2].input=2"}).find("model.layers[2].input: expected the index of an earlier layer (0..1)"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"model.layers[0].input=0"}).find("input: expected an earlier layer (there is none)"), std::string::npos);
  EXPECT_EQ(error_of(good, {"model.layers[2].input=1"}), "no error");  // what it reads by default, said
  EXPECT_NE(error_of(good, {"model.layers[3].padding=2"}).find("model.layers[3].padding: expected less than the kernel (2)"),
            std::string::npos);
  EXPECT_EQ(error_of(good, {"model.layers[3].padding=1"}), "no error");
}

// A checkpoint of another network is refused with a message naming the file.
TEST(NnTrain, CheckpointOfAnotherNetworkIsRefused) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text(kInt8)));
  train(x, {(t.path / "r").string(), false, {}});
  Experiment other = x;
  other.layers.back().out = 7;
  Network net = build_network(other, {32, 1, 28, 28});
  Optimizer opt(other.optimizer, Numerics{});
  const std::string ck = (t.path / "r" / "checkpoint.bin").string();
  try {
    load_checkpoint(ck, net, opt);
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint.bin"), std::string::npos) << e.what();
  }
}

// Park et al. 2018: with 8-bit master weights an update far below their LSB is lost by plain SGD,
// and delivered by the lazy update once the accumulator has gathered enough of it.
TEST(NnOptimizer, LazyUpdateDeliversUpdatesBelowTheMasterLsb) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::Sgd;
  const Numerics master = Numerics::parse("fixed<8,6>");  // LSB 1/64
  Param p{"weight", Tensor({1, 1}, 0.5f), Tensor({1, 1}, -1.0f), true};  // gradient -1: w grows by lr per step
  std::vector<Param*> ps{&p};
  Optimizer plain(cfg, master);
  for (int s = 0; s < 100; ++s) plain.step(ps, 1.0 / 1024, 1, std::uint64_t(s));
  EXPECT_EQ(p.value.v[0], 0.5f);  // 1/1024 rounds away every time
  p.value.v[0] = 0.5f;
  Optimizer lazy(cfg, master, Numerics::parse("fixed<16,16>"));
  for (int s = 0; s < 100; ++s) lazy.step(ps, 1.0 / 1024, 1, std::uint64_t(s));
  // Nothing is lost (delivered + accumulator = 100/1024) and the accumulator keeps at most half an
  // LSB (8/1024): so exactly six LSBs of 1/64 (96/1024) are delivered and 4/1024 waits.
  EXPECT_EQ(p.value.v[0], 0.5f + 6.0f / 64);
  EXPECT_EQ(lazy.lazy_state()[0][0], 4.0f / 1024);
}

// The optimizer's lazy update runs fixed-point formats through arith::LazyUpdateFixed on the codes'
// values; every weight and accumulator must be what arith's general step on codes (exact values,
// Exact) gives, with the random bits of the update stream, for nearest and stochastic rounding,
// updates from far below an accumulator LSB to ones that saturate, over several steps.
TEST(NnOptimizer, LazyUpdateEqualsArithsStepOnCodes) {
  for (const arith::Rounding rd : {arith::Rounding::NearestEven, arith::Rounding::Stochastic}) {
    OptimizerConfig cfg;
    cfg.kind = OptimizerKind::Sgd;
    Numerics master = Numerics::parse("fixed<8,6>"), lazy = Numerics::parse("fixed<12,10>");
    master.spec.rounding = lazy.spec.rounding = rd;
    Optimizer opt(cfg, master, lazy);
    const std::size_t n = 3000;
    std::mt19937_64 rng(31);
    Param p{"weight", Tensor({1, std::int64_t(n)}), Tensor({1, std::int64_t(n)}), true};
    for (float& w : p.value.v) w = float(std::int64_t(rng() % 256) - 128) / 64;  // on fixed<8,6>'s grid
    const arith::LazyUpdate oracle{master.format, master.spec, lazy.format, lazy.spec};
    std::vector<Param*> ps{&p};
    std::vector<float> acc(n, 0.0f);
    std::int64_t delivered = 0;
    for (std::uint64_t step = 0; step < 4; ++step) {
      for (float& g : p.grad.v) g = std::ldexp(float(std::int64_t(rng() % 2001) - 1000) / 1000, -int(rng() % 14));
      const double lr = 0.37;
      std::vector<float> theta = p.value.v;
      opt.step(ps, lr, 5, step);
      const arith::SrStream sr = StreamId{step, 0, TensorClass::Update, 0}.stream(5, n);
      const int k = lazy.spec.sr_bits;
      const bool st = rd == arith::Rounding::Stochastic;
      for (std::size_t i = 0; i < n; ++i) {
        const auto code = [](const arith::Format& f, float x) {
          return arith::quantize(f, arith::Exact::from_float(x), {arith::Rounding::NearestEven, arith::default_overflow(f)}).code;
        };
        const double u = lr * double(p.grad.v[i]);
        const arith::LazyUpdateResult want =
            oracle.step(code(master.format, theta[i]), code(lazy.format, acc[i]), arith::Exact::from_double(-u),
                        st ? sr.bits(3 * i, k) : 0, st ? sr.bits(3 * i + 1, master.spec.sr_bits) : 0, st ? sr.bits(3 * i + 2, k) : 0);
        const float w = arith::to_f32(arith::decode(master.format, want.theta)), a = arith::to_f32(arith::decode(lazy.format, want.acc));
        ASSERT_EQ(p.value.v[i], w) << arith::to_string(rd) << " step " << step << " element " << i;
        ASSERT_EQ(opt.lazy_state()[0][i], a) << arith::to_string(rd) << " step " << step << " element " << i;
        delivered += w != theta[i];
        acc[i] = a;
      }
    }
    EXPECT_GT(delivered, 1000);
  }
}

// BNN's AP2(x) = sign(x) 2^round(log2 |x|), against libm's log2 and exp2.
// The quantizers' round-half-away-from-zero is std::round on every kind of double: halfway cases
// of both signs, the integers next to 2^52 and 2^53, signed zeros, infinities, nan and random values
// of every exponent.
TEST(NnNumerics, RoundHalfAwayIsStdRound) {
  std::vector<double> v{0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994,
                        std::nextafter(0.5, 1.0), 0x1p52 - 0.5, -0x1p52 + 0.5, 0x1p52, 0x1p52 + 1, 0x1p53 - 1, 0x1p53, 1e300,
                        -1e300, 5e-324, -5e-324, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    std::uint64_t bits = rng();
    double x;
    std::memcpy(&x, &bits, sizeof x);
    if (!std::isnan(x)) v.push_back(x);
    v.push_back(std::ldexp(double(std::int64_t(rng() >> 11) - (std::int64_t(1) << 52)), -int(rng() % 60)));  // near integers and halves
  }
  for (double x : v) {
    const double a = round_half_away(x), b = std::round(x);
    EXPECT_TRUE(std::memcmp(&a, &b, sizeof a) == 0) << x;
  }
  EXPECT_TRUE(std::isnan(round_half_away(std::nan(""))));
}

TEST(NnNumerics, Ap2IsTheNearestPowerOfTwoInLog) {
  EXPECT_EQ(ap2(3.0), 4.0);
  EXPECT_EQ(ap2(2.8), 2.0);  // log2 2.8 = 1.49
  EXPECT_EQ(ap2(-0.3), -0.25);
  EXPECT_EQ(ap2(0.0), 0.0);
  EXPECT_EQ(ap2(1.0), 1.0);
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> e(-30, 30);
  for (int i = 0; i < 10000; ++i) {
    const double x = std::exp2(e(rng)) * (i % 2 ? -1 : 1);
    EXPECT_EQ(ap2(x), std::copysign(std::exp2(std::round(std::log2(std::abs(x)))), x)) << x;
  }
}

// BinaryConnect's per-layer learning rate (lr / H, H = sqrt(1.5 / (fan_in + fan_out))), AdaMax and
// BNN's shift-based AdaMax, one parameter stepped twice and computed here from the formulas.
TEST(NnOptimizer, GlorotScalingAndAdamax) {
  std::mt19937_64 rng(2);
  auto conv = make_conv2d(4, 3);
  conv->init({1, 2, 5, 5}, rng);
  const double h = std::sqrt(1.5 / (2 * 9 + 4 * 9));  // fan_in 2 x 3 x 3, fan_out 4 x 3 x 3
  EXPECT_DOUBLE_EQ(conv->params()[0]->glorot, h);
  for (OptimizerKind kind : {OptimizerKind::Sgd, OptimizerKind::Adamax, OptimizerKind::ShiftAdamax}) {
    OptimizerConfig cfg;
    cfg.kind = kind;
    cfg.lr_scale = LrScale::Glorot;
    Param w{"weight", Tensor({1, 2}, 0.25f), Tensor({1, 2}), true};
    w.glorot = h;
    Param b{"bias", Tensor({1}, 0.25f), Tensor({1}), false};
    std::vector<Param*> ps{&w, &b};
    Optimizer opt(cfg, Numerics{});
    const double lr = 0.01, g1[2] = {0.3, -0.02}, g2[2] = {-0.1, -0.05};
    double m[2] = {0, 0}, v[2] = {0, 0}, want[2] = {0.25, 0.25};
    for (int s = 0; s < 2; ++s) {
      const double* g = s == 0 ? g1 : g2;
      w.grad.v = {float(g[0]), float(g[1])};
      b.grad.v = {float(g[0])};
      opt.step(ps, lr, 1, std::uint64_t(s));
      for (int i = 0; i < 2; ++i) {
        if (kind == OptimizerKind::Sgd) {
          want[i] = float(want[i] - lr / h * float(g[i]));
          continue;
        }
        m[i] = float(0.9 * m[i] + 0.1 * double(float(g[i])));
        v[i] = float(std::max(0.999 * v[i], std::abs(double(float(g[i])))));
        const double step = lr / h / (1 - std::pow(0.9, s + 1));
        const double u = kind == OptimizerKind::Adamax ? step * m[i] / v[i]
                                                       : ap2(step) * m[i] / std::exp2(std::round(std::log2(v[i])));
        want[i] = float(want[i] - u);
      }
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(w.value.v[i], want[i], 1e-6) << to_string(kind) << " step " << s << " " << i;
    }
    if (kind == OptimizerKind::Sgd) {
      EXPECT_FLOAT_EQ(b.value.v[0], float(0.25 - lr * 0.3 - lr * -0.1));  // bias: lr unscaled
    }
  }
  // BinaryConnect's recipe in +-1 units: lr / H^2.
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::Sgd;
  cfg.lr_scale = LrScale::GlorotBinaryConnect;
  Param w{"weight", Tensor({1, 1}, 0.25f), Tensor({1, 1}, 0.5f), true};
  w.glorot = h;
  std::vector<Param*> ps{&w};
  Optimizer(cfg, Numerics{}).step(ps, 1e-4, 1, 0);
  EXPECT_FLOAT_EQ(w.value.v[0], float(0.25 - 1e-4 / (h * h) * 0.5));
}

// BNN's shift-based BatchNorm (Algorithm 3), evaluated here in double: C = x - mean,
// var = mean(C AP2(C)), y = AP2(gamma) C AP2(1 / sqrt(var + eps)) + beta; backward is BatchNorm's
// with those two factors: dx = AP2(gamma) s / N (N dy - sum dy - x_hat sum(dy x_hat)).
TEST(NnLayers, ShiftBasedBatchNorm) {
  std::mt19937_64 rng(5);
  auto bn = make_batchnorm(0.1, 1e-5, true);
  bn->init({6, 2}, rng);
  Param& gamma = *bn->params()[0];
  Param& beta = *bn->params()[1];
  gamma.value.v = {0.7f, -1.3f};
  beta.value.v = {0.1f, -0.2f};
  Tensor x({6, 2}), y, dy({6, 2}), dx;
  std::normal_distribution<float> d(0, 2);
  for (auto& v : x.v) v = d(rng);
  for (auto& v : dy.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  bn->forward(x, y, ctx);
  bn->backward(dy, dx, true, ctx);
  for (std::size_t c = 0; c < 2; ++c) {
    double mean = 0, var = 0, sg = 0, sgx = 0;
    for (std::size_t i = 0; i < 6; ++i) mean += x.v[i * 2 + c] / 6.0;
    for (std::size_t i = 0; i < 6; ++i) {
      const double cc = x.v[i * 2 + c] - mean;
      var += cc * std::copysign(std::exp2(std::round(std::log2(std::abs(cc)))), cc) / 6.0;
    }
    const double s = std::exp2(std::round(std::log2(1 / std::sqrt(var + 1e-5))));
    const double g = std::copysign(std::exp2(std::round(std::log2(std::abs(double(gamma.value.v[c]))))), double(gamma.value.v[c]));
    std::vector<double> xh(6);
    for (std::size_t i = 0; i < 6; ++i) {
      xh[i] = (x.v[i * 2 + c] - mean) * s;
      EXPECT_NEAR(y.v[i * 2 + c], g * xh[i] + beta.value.v[c], 1e-5) << c << "," << i;
      sg += dy.v[i * 2 + c], sgx += dy.v[i * 2 + c] * xh[i];
    }
    EXPECT_NEAR(gamma.grad.v[c], sgx, 1e-4);
    for (std::size_t i = 0; i < 6; ++i)
      EXPECT_NEAR(dx.v[i * 2 + c], g * s / 6 * (6 * dy.v[i * 2 + c] - sg - xh[i] * sgx), 1e-4) << c << "," << i;
  }
}

// WAGE's quantizers from the paper's definitions, Q(x) = sigma round(clip(x, -1 + sigma,
// 1 - sigma) / sigma), sigma = 2^(1-k), evaluated here in double.
TEST(NnNumerics, WageQuantizersMatchTheirFormulas) {
  using bitsim::arith::Format;
  auto q = [](double x, int k) {
    const double s = std::ldexp(1.0, 1 - k);
    return s * std::nearbyint(std::clamp(x, -1 + s, 1 - s) / s);
  };
  const std::vector<float> x0{-1.7f, -0.3f, -0.1f, 0.0f, 0.2f, 0.26f, 0.74f, 3.0f};
  for (const auto& [f, k] : {std::pair{"wage-w<2>", 2}, std::pair{"wage-a<8>", 8}, std::pair{"wage-a<3>", 3}}) {
    std::vector<float> x = x0, scale;
    EXPECT_EQ(Numerics::parse(f).apply(x, {}, {}, 0, &scale), Format::fixed(k, 0)) << f;
    EXPECT_EQ(scale, (std::vector<float>{float(std::ldexp(1.0, 1 - k))})) << f;
    std::vector<float> e = x0;
    EXPECT_EQ(Numerics::parse(f).apply(e), Format::fixed(k, k - 1)) << f;  // the effective values' grid
    for (std::size_t i = 0; i < x0.size(); ++i) {
      EXPECT_EQ(x[i] * scale[0], float(q(x0[i], k))) << f << " " << x0[i];
      EXPECT_EQ(e[i], float(q(x0[i], k))) << f << " " << x0[i];
    }
  }
  // Errors: Q(e / Shift(max|e|)), Shift(3.0) = 4: the magnitude is not restored.
  std::vector<float> x = x0;
  Numerics::parse("wage-e<8>").apply(x);
  for (std::size_t i = 0; i < x0.size(); ++i) EXPECT_EQ(x[i], float(q(x0[i] / 4.0, 8))) << x0[i];
  // Gradients are left to the optimizer.
  std::vector<float> g = x0;
  EXPECT_EQ(Numerics::parse("wage-g<8>").apply(g), Format::fp32());
  EXPECT_EQ(g, x0);
  EXPECT_THROW(Numerics::parse("wage-w<1>"), std::invalid_argument);
}

// WAGE's weights in a layer: the scaled initialization U(-L, L), L = max(L_min, L0), L_min = 1.5
// sigma, L0 = sqrt(6 / fan_in), and the forward y = x (Q(w) / alpha)^T with alpha =
// max(Shift(L_min / L0), 1); the activations' clip passes the error only inside [-1 + sigma, 1 - sigma].
TEST(NnLayers, WageWeightsInitializationAndAlpha) {
  std::mt19937_64 rng(8);
  auto l = make_linear(3, false);
  l->init({2, 400}, rng);
  Param& w = *l->params()[0];
  const double l0 = std::sqrt(6.0 / 400), lmin = 0.75;  // k = 2: sigma = 1/2
  double before = 0;
  for (float v : w.value.v) before = std::max(before, std::abs(double(v)));
  l->numerics.weights = Numerics::parse("wage-w<2>");
  l->numerics.activations = Numerics::parse("wage-a<2>");
  l->numerics_set();
  double after = 0;
  for (float v : w.value.v) after = std::max(after, std::abs(double(v)));
  EXPECT_LE(before, l0);
  EXPECT_NEAR(after, before * lmin / l0, 1e-6);
  EXPECT_GT(after, l0);
  const double alpha = 8;  // Shift(0.75 / 0.1225 = 6.12) = 2^round(2.61)
  Tensor x({2, 400}), y, dy({2, 3}, 1.0f), dx;
  std::normal_distribution<float> d(0, 0.5f);
  for (auto& v : x.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  l->forward(x, y, ctx);
  auto q = [](double v) { return 0.5 * std::nearbyint(std::clamp(v, -0.5, 0.5) / 0.5); };
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t n = 0; n < 3; ++n) {
      double want = 0;
      for (std::size_t k = 0; k < 400; ++k) want += q(x.v[i * 400 + k]) * q(w.value.v[n * 400 + k]) / alpha;
      EXPECT_NEAR(y.v[i * 3 + n], want, 1e-6) << i << "," << n;
    }
  l->backward(dy, dx, true, ctx);
  int masked = 0;
  for (std::size_t i = 0; i < x.v.size(); ++i) {
    double want = 0;
    for (std::size_t n = 0; n < 3; ++n) want += q(w.value.v[n * 400 + i % 400]) / alpha;
    if (std::abs(x.v[i]) > 0.5) want = 0, ++masked;
    EXPECT_NEAR(dx.v[i], want, 1e-6) << i;
  }
  EXPECT_GT(masked, 0);
}

// WAGE's update: n = lr g / Shift(max|g|) stochastically rounded to an integer (floor plus 1 with
// probability the fraction, drawn from the update stream), w -= n 2^(1-k_G), weights clipped to
// +-(1 - 2^(1-k_G)).
TEST(NnOptimizer, WageUpdate) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::Wage;
  cfg.wage_bits = 8;
  Param w{"weight", Tensor({1, 5}), Tensor({1, 5}), true};
  w.value.v = {0.5f, 0.5f, 0.5f, 0.5f, 0.995f};
  w.grad.v = {0.5f, -0.25f, 0.125f, 0.3f, -0.01f};  // max 0.5: Shift 0.5; lr 8: n = 16 g
  std::vector<Param*> ps{&w};
  Optimizer opt(cfg, Numerics{});
  opt.step(ps, 8, 3, 5);
  const double s = 1.0 / 128;
  const bitsim::arith::SrStream sr = StreamId{5, 0, TensorClass::Update, 0}.stream(3, 5);
  auto r = [&](std::size_t i) { return std::ldexp(double(sr.bits(i, 24)), -24); };
  EXPECT_EQ(w.value.v[0], float(0.5 - 8 * s));
  EXPECT_EQ(w.value.v[1], float(0.5 + 4 * s));
  EXPECT_EQ(w.value.v[2], float(0.5 - 2 * s));
  EXPECT_EQ(w.value.v[3], float(0.5 - (4 + (0.8 > r(3) ? 1 : 0)) * s));  // n = 4.8
  EXPECT_EQ(w.value.v[4], float(1 - s));  // 0.995 + (0 or 1) / 128, clipped to 1 - 1/128
}

// Park et al. 2018, eq. 5: bitwidth > log2(classes - 1) + log2(2 / alpha).
TEST(NnExperiment, ClassifierRuleWidensTheLastGemmLayer) {
  TempDir t;
  Experiment x = Experiment::load(t.write("x.toml", experiment_text(kInt8)), {"numerics.classifier_rule_alpha=0.5"});
  EXPECT_EQ(x.classifier_layer(), 6);
  EXPECT_EQ(x.classifier_bits(), 6);  // log2(9) + 2 = 5.17
  x.layers.back().out = 1000;
  EXPECT_EQ(x.classifier_bits(), 12);  // log2(999) + 2 = 11.96
  x.classifier_rule_alpha = 1.0 / 8;
  EXPECT_EQ(x.classifier_bits(), 14);  // log2(999) + 4 = 13.96, the paper's AlexNet case
  const LayerNumerics last = x.layer(6), first = x.layer(0);
  EXPECT_EQ(last.activations.block.element.wl, 14);
  EXPECT_EQ(last.weights.block.element.wl, 14);
  EXPECT_EQ(first.activations.block.element.wl, 8);
}

// Loss scaling: a static scale of 2^k is exact in fp32 (scaling by powers of two), so dfx-quantized
// errors, which are scale-invariant, train to the same weights; dynamic scaling runs and reports.
TEST(NnTrain, PowerOfTwoLossScaleLeavesDynamicFixedPointTrainingUnchanged) {
  TempDir t;
  const std::string text = experiment_text(R"(weights = "dfx<8,channel>"
activations = "dfx<8>"
errors = "dfx<8>"
gradients = "dfx<8>"
accumulator = "int<32>"
)");
  const Experiment plain = Experiment::load(t.write("a.toml", text));
  const Experiment scaled = Experiment::load(t.write("b.toml", text), {"train.loss_scale=1024"});
  train(plain, {(t.path / "a").string(), false, {}});
  train(scaled, {(t.path / "b").string(), false, {}});
  EXPECT_TRUE(checkpoint_state(t.path / "a" / "checkpoint.bin") == checkpoint_state(t.path / "b" / "checkpoint.bin"));
  // Dynamic scaling starts at 2^16 and doubles only after 1000 good steps; this run has 10 steps
  // (300 examples, batch 32) and dfx errors cannot overflow, so the scale stays 2^16, no step is
  // skipped, and being a power of two it too trains to the same weights.
  const Experiment dynamic = Experiment::load(t.write("c.toml", text), {"train.loss_scale=\"dynamic\""});
  const RunResult r = train(dynamic, {(t.path / "c").string(), false, {}});
  EXPECT_EQ(r.report["loss_scale"]["final"].get<double>(), 65536.0);
  EXPECT_EQ(r.report["loss_scale"]["skipped_steps"].get<std::int64_t>(), 0);
  EXPECT_TRUE(checkpoint_state(t.path / "a" / "checkpoint.bin") == checkpoint_state(t.path / "c" / "checkpoint.bin"));
}

// BinaryConnect's stochastic inference: with numerics.test_weights = "master" the test set runs
// on the master weights, i.e. exactly what an fp32-weight network does with the same checkpoint;
// the default evaluates the stochastically binarized weights, which differ.
TEST(NnTrain, MasterTestWeightsEvaluateTheRealValuedWeights) {
  TempDir t;
  const std::string n = "weights = { format = \"binary\", rounding = \"stochastic\" }\n";
  const Experiment bc = Experiment::load(t.write("bc.toml", experiment_text(n)), {"numerics.test_weights=\"master\""});
  const RunResult r = train(bc, {(t.path / "bc").string(), false, {}});
  EXPECT_EQ(r.report["experiment"]["test_weights"], "master");
  const std::string ck = (t.path / "bc" / "checkpoint.bin").string();
  auto on = [](const std::string& checkpoint) {
    InferOptions o;
    o.checkpoint = checkpoint;
    return o;
  };
  const Experiment fp32 = Experiment::load(t.write("fp32.toml", experiment_text("weights = \"fp32\"\n")));
  const RunResult real = infer(fp32, on(ck));
  EXPECT_EQ(r.report["accuracy"]["test"].get<double>(), real.report["accuracy"]["test"].get<double>());
  EXPECT_EQ(r.report["loss"]["test"].get<double>(), real.report["loss"]["test"].get<double>());
  const RunResult again = infer(bc, on(ck));
  EXPECT_EQ(again.report["loss"]["test"].get<double>(), real.report["loss"]["test"].get<double>());
  const Experiment sampled = Experiment::load(t.write("s.toml", experiment_text(n)));
  EXPECT_NE(infer(sampled, on(ck)).report["loss"]["test"].get<double>(), real.report["loss"]["test"].get<double>());
  // An integer accumulator cannot take float weights.
  try {
    Experiment::load(t.write("int.toml", experiment_text(std::string(kInt8))), {"numerics.test_weights=\"master\""});
    ADD_FAILURE() << "an integer accumulator with master test weights was accepted";
  } catch (const ExperimentError& e) {
    EXPECT_NE(std::string(e.what()).find("needs a float accumulator, not 'int<32>'"), std::string::npos) << e.what();
  }
  try {
    Experiment::load(t.write("bad.toml", experiment_text(n)), {"numerics.test_weights=\"real\""});
    ADD_FAILURE() << "test_weights = real was accepted";
  } catch (const ExperimentError& e) {
    EXPECT_NE(std::string(e.what()).find("numerics.test_weights: expected quantized or master, got 'real'"), std::string::npos) << e.what();
  }
}

// An 8-bit run with 16-bit master weights and the lazy update learns, and resumes bit-identically
// (the accumulators are part of the checkpoint).
TEST(NnTrain, LazyUpdateRunLearnsAndResumes) {
  TempDir t;
  const std::string n = std::string(kInt8) + "master = \"fixed<16,14>\"\nlazy_accumulator = \"fixed<16,22>\"\n";
  const Experiment two = Experiment::load(t.write("two.toml", experiment_text(n, 2)));
  const Experiment one = Experiment::load(t.write("one.toml", experiment_text(n, 1)));
  const RunResult full = train(two, {(t.path / "a").string(), false, {}});
  train(one, {(t.path / "b").string(), false, {}});
  train(two, {(t.path / "b").string(), true, {}});
  EXPECT_TRUE(checkpoint_state(t.path / "a" / "checkpoint.bin") == checkpoint_state(t.path / "b" / "checkpoint.bin"));
  EXPECT_GT(full.epochs.back().test_accuracy, 0.5);
}

// Binary numerics: sign() gives exactly +-1 (zero to +1) on a fixed<2,0> carrier; stochastic
// binarization is +1 at the hard-sigmoid rate.
TEST(NnNumerics, BinaryAndStochasticBinary) {
  std::vector<float> x{-3, -0.0f, 0, 0.25f, 7};
  EXPECT_EQ(Numerics::parse("binary").apply(x), bitsim::arith::Format::fixed(2, 0));
  EXPECT_EQ(x, (std::vector<float>{-1, 1, 1, 1, 1}));
  std::vector<float> y(100000, 0.5f);  // hard_sigmoid(0.5) = 0.75
  Numerics::parse("binary", "stochastic").apply(y, {}, {7, 1});
  double ups = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 1 || v == -1);
    ups += v == 1;
  }
  EXPECT_NEAR(ups / double(y.size()), 0.75, 0.01);
  EXPECT_THROW(Numerics::parse("binary", "toward-zero"), std::invalid_argument);
}

// A BNN (binary weights and activations after hardtanh, real-valued master weights clipped to
// [-1, 1], the first layer's input kept at 8 bits) learns the synthetic task through XNOR-able
// GEMMs on an integer accumulator.
TEST(NnTrain, BinarizedNetworkLearns) {
  TempDir t;
  const std::string text = R"(name = "bnn"
seed = 2
[data]
dataset = "synthetic"
synthetic_train = 600
synthetic_test = 200
[model]
loss = "square-hinge"
layers = [
  { type = "conv2d", out = 16, kernel = 5, stride = 2 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "flatten" },
  { type = "linear", out = 10 },
  { type = "batchnorm" },
]
[train]
epochs = 4
batch = 50
lr = 0.01
clip = 1.0
[numerics]
weights = "binary"
activations = "binary"
errors = "dfx<8>"
accumulator = "int<24>"
[[numerics.layer]]
index = 0
activations = "dfx<8>"
)";
  const RunResult r = train(Experiment::load(t.write("bnn.toml", text)), {"", false, {}});
  EXPECT_GT(r.epochs.back().test_accuracy, 0.6);
  // The binary forward GEMM (layer 4: binary weights and activations) is costed as XNOR-popcount.
  bool xnor = false;
  for (const auto& g : r.report["cost"]["gemms"])
    if (g["index"] == 4 && g["phase"] == "forward") xnor = g["xnor"].get<bool>() && g["w_format"] == "fixed<2,0>";
  EXPECT_TRUE(xnor);
}

// A residual connection: h = linear0(x), y = linear4(linear2(relu(h)) + h). The first layer's
// weight gradient flows through both paths; it must match finite differences of sum(r * y).
TEST(NnLayers, ResidualGradientsMatchFiniteDifferences) {
  Network net;
  net.layers.push_back(make_linear(6));
  net.layers.push_back(make_relu());
  net.layers.push_back(make_linear(6));
  net.layers.push_back(make_residual(0));  // + output of layer 0
  net.layers.push_back(make_linear(3));
  net.init({4, 5}, 9);
  std::mt19937_64 rng(2);
  std::normal_distribution<float> d(0, 1);
  Tensor x({4, 5}), r({4, 3});
  for (auto& v : x.v) v = d(rng);
  for (auto& v : r.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  auto loss = [&] {
    const Tensor& y = net.forward(x, ctx);
    double s = 0;
    for (std::size_t i = 0; i < y.v.size(); ++i) s += double(y.v[i]) * r.v[i];
    return s;
  };
  loss();
  net.backward(r, ctx);
  Param& w0 = *net.layers[0]->params()[0];
  const std::vector<float> g = w0.grad.v;
  const float h = 1e-2f;
  for (std::size_t i = 0; i < g.size(); i += 3) {
    const float w = w0.value.v[i];
    w0.value.v[i] = w + h;
    const double up = loss();
    w0.value.v[i] = w - h;
    const double down = loss();
    w0.value.v[i] = w;
    EXPECT_NEAR(g[i], (up - down) / (2 * h), 2e-2 * (1 + std::abs((up - down) / (2 * h)))) << i;
  }
  Network bad;
  bad.layers.push_back(make_linear(6));
  bad.layers.push_back(make_linear(4));
  bad.layers.push_back(make_residual(0));  // 6 features added to 4
  EXPECT_THROW(bad.init({2, 5}, 1), std::invalid_argument);
}

// The scaled schemes against their published formulas, computed here from scratch.
TEST(NnNumerics, ScaledSchemesMatchTheirFormulas) {
  using bitsim::arith::Format;
  // XNOR-Net: sign(w) with alpha = mean |w| per row.
  std::vector<float> w{0.5f, -1.5f, 1.0f, -0.25f, 0.25f, 0.0f};
  std::vector<float> scale;
  EXPECT_EQ(Numerics::parse("binary-scaled").apply(w, {2, 3}, {}, 0, &scale), Format::fixed(2, 0));
  EXPECT_EQ(w, (std::vector<float>{1, -1, 1, -1, 1, 1}));
  EXPECT_EQ(scale, (std::vector<float>{1.0f, float(0.5 / 3)}));
  // DoReFa weights, k = 2: y = tanh(w) / (2 max|tanh|) + 1/2, code 2 round(3 y) - 3, scale 1/3.
  std::vector<float> v{-2.0f, -0.1f, 0.0f, 0.3f, 2.0f};
  const std::vector<float> orig = v;
  Numerics::parse("dorefa-w<2>").apply(v, {}, {}, 0, &scale);
  const double m = std::tanh(2.0);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double y = std::tanh(double(orig[i])) / (2 * m) + 0.5;
    EXPECT_EQ(v[i], float(2 * std::nearbyint(3 * y) - 3)) << i;
  }
  EXPECT_EQ(scale, (std::vector<float>{float(1.0 / 3)}));
  // Without a scale vector the effective values come back: code x scale.
  std::vector<float> e = orig;
  EXPECT_EQ(Numerics::parse("dorefa-w<2>").apply(e), Format::floating(8, 23));
  for (std::size_t i = 0; i < e.size(); ++i) EXPECT_FLOAT_EQ(e[i], v[i] * float(1.0 / 3));
  // DoReFa activations, k = 3: round(7 clip(x, 0, 1)), scale 1/7.
  std::vector<float> a{-1.0f, 0.2f, 0.5f, 0.99f, 3.0f};
  Numerics::parse("dorefa-a<3>").apply(a, {}, {}, 0, &scale);
  EXPECT_EQ(a, (std::vector<float>{0, 1, 4, 7, 7}));  // 7 x 0.5 = 3.5 rounds to even 4
  EXPECT_THROW(Numerics::parse("dorefa-w<0>"), std::invalid_argument);
  EXPECT_THROW(Numerics::parse("dorefa-a<3"), std::invalid_argument);
  EXPECT_THROW(Numerics::parse("ternary<2>"), std::invalid_argument);
}

// DoReFa's weight transform f(w) = tanh(w) / max|tanh(w)| (= 2 y - 1 before quantize_k): the
// gradient dorefa_w_backward() gives against central differences of sum_i g_i f_i(w), evaluated
// here in double, the max included (its largest |tanh| is a negative weight).
TEST(NnNumerics, DorefaWeightGradientMatchesFiniteDifferences) {
  const std::vector<float> w{0.3f, -1.7f, 0.05f, 1.1f, -0.4f, 0.9f, -2.5f, 0.0f, 1.6f};
  const std::vector<float> g{0.7f, -0.2f, 1.3f, 0.4f, -0.9f, 0.25f, 0.6f, -1.1f, 0.8f};
  auto loss = [&](const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double x : v) m = std::max(m, std::abs(std::tanh(x)));
    for (std::size_t i = 0; i < v.size(); ++i) s += double(g[i]) * std::tanh(v[i]) / m;
    return s;
  };
  std::vector<float> got = g;
  dorefa_w_backward(w, got);
  const double h = 1e-6;
  for (std::size_t j = 0; j < w.size(); ++j) {
    std::vector<double> up(w.begin(), w.end()), down(w.begin(), w.end());
    up[j] += h, down[j] -= h;
    const double num = (loss(up) - loss(down)) / (2 * h);
    EXPECT_NEAR(got[j], num, 1e-6 * (1 + std::abs(num))) << j;
  }
  // The max's term is there: without it weight 6 would get g_6 (1 - t^2) / m alone.
  const double t6 = std::tanh(-2.5);
  EXPECT_GT(std::abs(got[6] - 0.6 * (1 - t6 * t6) / std::abs(t6)), 1e-3);
  std::vector<float> zero(3, 0.0f), gz{1, 2, 3};
  dorefa_w_backward(zero, gz);  // m = 0: left as it is
  EXPECT_EQ(gz, (std::vector<float>{1, 2, 3}));
}

// A Linear layer with DoReFa weights hands its master weights J^T (dy^T x), the Jacobian of
// tanh(w) / max|tanh(w)| evaluated here in double, not the straight-through dy^T x.
TEST(NnLayers, DorefaWeightsBackpropagateThroughTanh) {
  std::mt19937_64 rng(7);
  auto l = make_linear(3, false);
  l->numerics.weights = Numerics::parse("dorefa-w<3>");
  l->init({4, 5}, rng);
  Tensor x({4, 5}), y, dy({4, 3}), dx;
  std::normal_distribution<float> d(0, 1);
  for (auto& v : x.v) v = d(rng);
  for (auto& v : dy.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  l->forward(x, y, ctx);
  l->backward(dy, dx, false, ctx);
  const Param& p = *l->params()[0];
  std::vector<double> ge(15, 0.0), t(15);
  double m = 0, s = 0;
  std::size_t at = 0;
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t k = 0; k < 5; ++k)
      for (std::size_t i = 0; i < 4; ++i) ge[n * 5 + k] += double(dy.v[i * 3 + n]) * x.v[i * 5 + k];
  for (std::size_t j = 0; j < 15; ++j) {
    t[j] = std::tanh(double(p.value.v[j]));
    if (std::abs(t[j]) > m) m = std::abs(t[j]), at = j;
    s += ge[j] * t[j];
  }
  for (std::size_t j = 0; j < 15; ++j) {
    double want = ge[j] * (1 - t[j] * t[j]) / m;
    if (j == at) want -= (t[j] < 0 ? -1 : 1) * (1 - t[j] * t[j]) / (m * m) * s;
    EXPECT_NEAR(p.grad.v[j], want, 1e-5 * (1 + std::abs(want))) << j;
  }
}

// XNOR-Net with binary inputs (Rastegari et al. 2016, sec. 3.2): I * W ~ (sign(I) (*) sign(W)) K alpha,
// A = sum_c |I(c,:,:)| / c, K = A convolved with a (kh x kw) box of 1 / (kh kw) at the
// convolution's stride and padding, alpha = mean |W| per output channel. Computed here directly
// in double against a Conv2d with binary-scaled weights and activations.
TEST(NnLayers, XnorActivationScalingIsTheKMap) {
  std::mt19937_64 rng(11);
  const std::int64_t n = 2, c = 3, h = 7, w = 6, o = 4, kk = 3, stride = 2, pad = 1;
  auto l = make_conv2d(o, kk, stride, pad, true);
  l->numerics.weights = Numerics::parse("binary-scaled");
  l->numerics.activations = Numerics::parse("binary-scaled");
  const Shape out = l->init({n, c, h, w}, rng);
  Tensor x({n, c, h, w}), y;
  std::normal_distribution<float> d(0, 1);
  for (auto& v : x.v) v = d(rng);
  Param& wp = *l->params()[0];
  Param& bp = *l->params()[1];
  for (auto& v : bp.value.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  l->forward(x, y, ctx);
  const std::int64_t ho = out[2], wo = out[3];
  auto sgn = [](double v) { return v >= 0 ? 1.0 : -1.0; };
  auto in = [&](std::int64_t b, std::int64_t ch, std::int64_t iy, std::int64_t ix) {
    return iy < 0 || iy >= h || ix < 0 || ix >= w ? std::optional<double>{} : std::optional<double>{x.v[std::size_t(((b * c + ch) * h + iy) * w + ix)]};
  };
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t oc = 0; oc < o; ++oc) {
      double alpha = 0;
      for (std::int64_t i = 0; i < c * kk * kk; ++i) alpha += std::abs(double(wp.value.v[std::size_t(oc * c * kk * kk + i)]));
      alpha /= double(c * kk * kk);
      for (std::int64_t oy = 0; oy < ho; ++oy)
        for (std::int64_t ox = 0; ox < wo; ++ox) {
          double conv = 0, kmap = 0;
          for (std::int64_t ky = 0; ky < kk; ++ky)
            for (std::int64_t kx = 0; kx < kk; ++kx) {
              const std::int64_t iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
              double a = 0;  // A at (iy, ix); zero in the padding
              for (std::int64_t ch = 0; ch < c; ++ch) {
                const auto v = in(b, ch, iy, ix);
                if (!v) continue;
                a += std::abs(*v) / double(c);
                conv += sgn(*v) * sgn(wp.value.v[std::size_t(((oc * c + ch) * kk + ky) * kk + kx)]);
              }
              kmap += a / double(kk * kk);
            }
          const double want = conv * kmap * alpha + bp.value.v[std::size_t(oc)];
          EXPECT_NEAR(y.v[std::size_t(((b * o + oc) * ho + oy) * wo + ox)], want, 1e-5 * (1 + std::abs(want)))
              << b << "," << oc << "," << oy << "," << ox;
        }
    }
}

// Backward of a Linear layer with XNOR-Net activations (K = mean |x| per example) and weights:
// dW[j][k] = sum_i dy[i][j] K_i sign(x[i][k]) and dx[i][k] = K_i sum_j dy[i][j] alpha_j sign(w[j][k])
// where |x[i][k]| <= 1 (sign()'s straight-through estimator), 0 elsewhere.
TEST(NnLayers, XnorActivationScalingBackward) {
  std::mt19937_64 rng(12);
  const std::size_t m = 3, k = 8, nout = 4;
  auto l = make_linear(std::int64_t(nout), false);
  l->numerics.weights = Numerics::parse("binary-scaled");
  l->numerics.activations = Numerics::parse("binary-scaled");
  l->init({std::int64_t(m), std::int64_t(k)}, rng);
  Tensor x({std::int64_t(m), std::int64_t(k)}), y, dy({std::int64_t(m), std::int64_t(nout)}), dx;
  std::normal_distribution<float> d(0, 1.2f);
  for (auto& v : x.v) v = d(rng);
  for (auto& v : dy.v) v = d(rng);
  Context ctx{true, 1, 0, nullptr, nullptr, nullptr};
  l->forward(x, y, ctx);
  l->backward(dy, dx, true, ctx);
  const Param& p = *l->params()[0];
  auto sgn = [](double v) { return v >= 0 ? 1.0 : -1.0; };
  std::vector<double> kk(m, 0.0), alpha(nout, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t c = 0; c < k; ++c) kk[i] += std::abs(double(x.v[i * k + c])) / double(k);
  for (std::size_t j = 0; j < nout; ++j)
    for (std::size_t c = 0; c < k; ++c) alpha[j] += std::abs(double(p.value.v[j * k + c])) / double(k);
  int clipped = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t c = 0; c < k; ++c) {
      double want = 0;
      for (std::size_t j = 0; j < nout; ++j) want += double(dy.v[i * nout + j]) * alpha[j] * sgn(p.value.v[j * k + c]);
      want = std::abs(x.v[i * k + c]) <= 1 ? want * kk[i] : (++clipped, 0.0);
      EXPECT_NEAR(dx.v[i * k + c], want, 1e-5 * (1 + std::abs(want))) << i << "," << c;
    }
  EXPECT_GT(clipped, 0);
  for (std::size_t j = 0; j < nout; ++j)
    for (std::size_t c = 0; c < k; ++c) {
      double want = 0;
      for (std::size_t i = 0; i < m; ++i) want += double(dy.v[i * nout + j]) * kk[i] * sgn(x.v[i * k + c]);
      EXPECT_NEAR(p.grad.v[j * k + c], want, 1e-5 * (1 + std::abs(want))) << j << "," << c;
    }
}

// Courbariaux et al. 2014's overflow-rate rule, stepped by hand on a 4-bit tensor (rate 0.1,
// interval 2): fixed<4,fl> holds [-8, 7] 2^-fl.
TEST(NnNumerics, OverflowRateRuleMovesTheExponent) {
  Numerics n = Numerics::parse("dfx<4,rate>");
  n.max_overflow_rate = 0.1, n.overflow_interval = 2;
  EXPECT_EQ(n.describe(), "dfx<4,rate> nearest-even saturate");
  std::vector<double> state;
  auto q = [](double v, int fl) { return float(std::clamp(std::nearbyint(std::ldexp(v, fl)), -8.0, 7.0) * std::ldexp(1.0, -fl)); };
  // Step 0: unset, fl from the largest |x| = 0.3: 0.3 x 2^4 = 4.8 lies in [4, 8), so fl = 4.
  // Counted: nothing beyond [-0.5, 0.4375]; 0.3 beyond fl = 5's [-0.25, 0.21875].
  std::vector<float> x{0.3f, -0.2f, 0.05f};
  const std::vector<float> x0 = x;
  EXPECT_EQ(apply_overflow_rate(n, state, x, {}, 0, 0, true), bitsim::arith::Format::fixed(4, 4));
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], q(x0[i], 4)) << i;
  // Step 1: before the interval: fl stays; 1.0 overflows (saturates to 7/16) at fl 4 and at fl 5.
  std::vector<float> y{1.0f, 0.1f, 0.1f, 0.1f};
  EXPECT_EQ(apply_overflow_rate(n, state, y, {}, 0, 1, true), bitsim::arith::Format::fixed(4, 4));
  EXPECT_EQ(y[0], 7.0f / 16);
  // Evaluation neither counts nor moves.
  std::vector<float> e{100.0f};
  EXPECT_EQ(apply_overflow_rate(n, state, e, {}, 0, 2, false), bitsim::arith::Format::fixed(4, 4));
  // Step 2: the update: 1 overflow in 7 elements, 0.14 > 0.1: fl 4 -> 3 (twice the range).
  std::vector<float> z{0.01f, 0.01f};
  EXPECT_EQ(apply_overflow_rate(n, state, z, {}, 0, 2, true), bitsim::arith::Format::fixed(4, 3));
  // Step 4: the update: no overflow at fl 3 or at fl 4 in the 2 elements since: fl 3 -> 4.
  std::vector<float> w{0.01f};
  EXPECT_EQ(apply_overflow_rate(n, state, w, {}, 0, 4, true), bitsim::arith::Format::fixed(4, 4));
  // Step 6: 1 in 1 overflows at fl 5 only (0.3 > 0.21875): the rate there exceeds 0.1, so fl stays.
  std::vector<float> v{0.3f};
  apply_overflow_rate(n, state, v, {}, 0, 5, true);
  EXPECT_EQ(apply_overflow_rate(n, state, v, {}, 0, 6, true), bitsim::arith::Format::fixed(4, 4));
}

// SYQ's codes and initial scales, from the paper's definitions evaluated here: Q = sign(W) M with
// M = 1 where |W| >= eta (eta = 0 binary, 0.05 max|W| ternary), the scale the mean |W| over the
// group's nonzero codes.
TEST(NnNumerics, SyqCodesAndInitialScales) {
  const std::vector<float> w0{0.5f, -0.04f, 0.0f, -2.0f, 0.09f, 0.11f, -0.2f, 0.3f};
  std::vector<float> w = w0, scale;
  EXPECT_EQ(Numerics::parse("syq-ternary<row>").apply(w, {2, 4}, {}, 0, &scale), bitsim::arith::Format::fixed(2, 0));
  const double eta = 0.05 * 2.0;  // 0.1
  std::vector<double> sum(2, 0.0), cnt(2, 0.0);
  for (std::size_t i = 0; i < w0.size(); ++i) {
    const double v = w0[i];
    const float want = std::abs(v) >= eta ? (v >= 0 ? 1.0f : -1.0f) : 0.0f;
    EXPECT_EQ(w[i], want) << i;
    if (want != 0) sum[i / 4] += std::abs(v), cnt[i / 4] += 1;
  }
  EXPECT_EQ(scale, (std::vector<float>{float(sum[0] / cnt[0]), float(sum[1] / cnt[1])}));
  w = w0;
  Numerics::parse("syq-binary<layer>").apply(w, {2, 4}, {}, 0, &scale);
  EXPECT_EQ(w, (std::vector<float>{1, -1, 1, -1, 1, 1, -1, 1}));
  double all = 0;
  for (float v : w0) all += std::abs(double(v));
  EXPECT_EQ(scale, (std::vector<float>{float(all / 8)}));
  EXPECT_EQ(Numerics::parse("syq-ternary<layer>").describe(), "syq-ternary<layer>");
  EXPECT_THROW(Numerics::parse("syq-binary"), std::invalid_argument);
}

// SYQ's scale gradient is the chain rule of W_hat = alpha Q (the layer's output is linear in alpha,
// so central differences are exact up to rounding); the master weights get alpha g where |w| <= 1
// (sign()'s clipped estimator on dE/dQ = alpha dE/dW_hat), g = dy^T x computed here in double.
TEST(NnLayers, SyqScaleAndWeightGradients) {
  for (const char* fmt : {"syq-ternary<row>", "syq-binary<layer>"}) {
    SCOPED_TRACE(fmt);
    std::mt19937_64 rng(21);
    auto l = make_linear(3, true);
    l->numerics.weights = Numerics::parse(fmt);
    l->init({4, 6}, rng);
    const auto params = l->params();
    ASSERT_EQ(params.size(), 3u);
    Param& w = *params[0];
    Param& alpha = *params[2];
    w.value.v[0] = 1.5f, w.value.v[7] = -1.25f;  // outside the estimator's |w| <= 1
    w.value.v[3] = 0.001f;                        // inside the ternary threshold
    for (auto& a : alpha.value.v) a *= 1.3f;      // a learned value, not the initial mean
    std::normal_distribution<float> d(0, 1);
    Tensor x({4, 6}), r({4, 3}), dx;
    for (auto& v : x.v) v = d(rng);
    for (auto& v : r.v) v = d(rng);
    probe(*l, x, r, &dx);
    const std::vector<float> ga = alpha.grad.v, gw = w.grad.v;
    const float h = 1e-2f;
    for (std::size_t i = 0; i < alpha.value.v.size(); ++i) {
      const float a = alpha.value.v[i];
      alpha.value.v[i] = a + h;
      const double up = probe(*l, x, r, nullptr);
      alpha.value.v[i] = a - h;
      const double down = probe(*l, x, r, nullptr);
      alpha.value.v[i] = a;
      const double num = (up - down) / (2 * h);
      EXPECT_NEAR(ga[i], num, 1e-3 * (1 + std::abs(num))) << i;
    }
    const bool rows = alpha.value.v.size() == 3;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t k = 0; k < 6; ++k) {
        double g = 0;
        for (std::size_t i = 0; i < 4; ++i) g += double(r.v[i * 3 + n]) * x.v[i * 6 + k];
        const float wv = w.value.v[n * 6 + k];
        const double want = std::abs(wv) <= 1 ? alpha.value.v[rows ? n : 0] * g : 0.0;
        EXPECT_NEAR(gw[n * 6 + k], want, 1e-5 * (1 + std::abs(want))) << n << "," << k;
      }
  }
}

// XNOR-Net (scaled binary weights), DoReFa (W2 A2 G4), TWN and SYQ (binary per layer, ternary per
// row) nets learn the synthetic task with integer GEMMs followed by the scale unit (DoReFa, with
// the gradient through tanh, in 5 epochs).
TEST(NnTrain, ScaledSchemesLearn) {
  const std::pair<const char*, int> cases[] = {
      {"weights = \"binary-scaled\"\nactivations = \"dfx<8>\"\nerrors = \"dfx<8>\"\naccumulator = \"int<32>\"\n", 3},
      {"weights = \"dorefa-w<2>\"\nactivations = \"dorefa-a<2>\"\nerrors = \"dfx<8>\"\ngradients = \"dorefa-g<4>\"\n"
       "accumulator = \"int<32>\"\n[[numerics.layer]]\nindex = 0\nactivations = \"dfx<8>\"\n", 5},
      {"weights = \"ternary\"\nactivations = \"dfx<8>\"\nerrors = \"dfx<8>\"\naccumulator = \"int<32>\"\n", 3},
      {"weights = \"syq-binary<layer>\"\nactivations = \"dfx<8>\"\nerrors = \"dfx<8>\"\naccumulator = \"int<32>\"\n", 3},
      {"weights = \"syq-ternary<row>\"\nactivations = \"dfx<8>\"\nerrors = \"dfx<8>\"\naccumulator = \"int<32>\"\n", 3},
  };
  for (const auto& [n, epochs] : cases) {
    TempDir t;
    const RunResult r = train(Experiment::load(t.write("x.toml", experiment_text(n, epochs))), {"", false, {}});
    EXPECT_GT(r.epochs.back().test_accuracy, 0.6) << n;
  }
}

// WAGE 2-8-8-8 (2-bit weights, 8-bit activations, errors and updates, the wage optimizer at lr 8)
// learns the synthetic task, with the same result for any thread count.
TEST(NnTrain, Wage2888Learns) {
  TempDir t;
  const Experiment x = Experiment::load(
      t.write("x.toml", experiment_text("weights = \"wage-w<2>\"\nactivations = \"wage-a<8>\"\nerrors = \"wage-e<8>\"\n"
                                        "gradients = \"wage-g<8>\"\naccumulator = \"int<32>\"\n", 3)),
      {"train.optimizer=\"wage\"", "train.lr=8"});
  const RunResult r = train(x, {"", false, {}});
  EXPECT_GT(r.epochs.back().test_accuracy, 0.6);
  // The update's stochastic rounding draws from counter-based streams: any thread count, same bits.
  std::string ck[2];
  for (int i = 0; i < 2; ++i) {
    set_threads(i == 0 ? 1 : 3);
    const std::string out = (t.path / ("run" + std::to_string(i))).string();
    train(x, {out, false, {}});
    ck[i] = checkpoint_state(fs::path(out) / "checkpoint.bin");
  }
  set_threads(0);
  EXPECT_TRUE(ck[0] == ck[1]);
}

// BatchNorm folding: in fp32 the folded network gives the same logits as the unfolded one (to fp32
// rounding) after training has moved the running statistics away from (0, 1).
TEST(NnLayers, BatchNormFoldsIntoThePrecedingGemmLayer) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text("accumulator = \"fp32-reference\"\n")));
  train(x, {(t.path / "r").string(), false, {}});
  Network a = build_network(x, {32, 1, 28, 28}), b = build_network(x, {32, 1, 28, 28});
  Optimizer oa = make_optimizer(x), ob = make_optimizer(x);
  load_checkpoint((t.path / "r" / "checkpoint.bin").string(), a, oa);
  load_checkpoint((t.path / "r" / "checkpoint.bin").string(), b, ob);
  EXPECT_EQ(b.fold_batchnorm(), 1);
  const Dataset d = synthetic(32, 1, 28, 28, 10, 4);
  Tensor in({32, 1, 28, 28});
  in.v = d.images;
  Context ctx{false, 1, 0, nullptr, nullptr, nullptr};
  const Tensor ya = a.forward(in, ctx);
  const Tensor& yb = b.forward(in, ctx);
  ASSERT_EQ(ya.v.size(), yb.v.size());
  for (std::size_t i = 0; i < ya.v.size(); ++i) EXPECT_NEAR(ya.v[i], yb.v[i], 1e-4 * (1 + std::abs(ya.v[i]))) << i;
}

// [[numerics.layer]] index -1 names the last layer; a missing index is an error.
TEST(NnExperiment, LayerOverrideIndexCountsFromTheEnd) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text(std::string(kInt8) +
                                                                          "[[numerics.layer]]\nindex = -1\nweights = \"dfx<4>\"\n")));
  ASSERT_EQ(x.layer_numerics.count(6), 1u);
  EXPECT_EQ(x.layer(6).weights.block.element.wl, 4);
  EXPECT_THROW(Experiment::load(t.write("y.toml", experiment_text(std::string(kInt8) + "[[numerics.layer]]\nweights = \"dfx<4>\"\n"))),
               ExperimentError);
}

// The workload of a training run, counted from the recorded shapes: every GEMM once per step of
// every epoch (the last partial batch at its own size), the stochastic-rounding units of the
// classes that round stochastically (one per element they quantize), and a requantizer per output
// of the integer accumulator in the forward pass.
TEST(NnCost, TrainingWorkloadCountsGemmsAndTheUnitsBesideTheArray) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text(kInt8, 2)));
  const Dataset train_set = load_split(x, true);
  const std::vector<GemmRecord> rec = record_training_step(x, train_set);
  const RunVolume v{300, 100, 2, 32, 256, 1000};  // 300 examples: 9 full batches of 32 and one of 12
  const bitsim::costmodel::Workload w = training_workload(x, rec, v);
  ASSERT_FALSE(rec.empty());
  for (const GemmRecord& g : rec) {
    double repeat_full = 0, repeat_rest = 0;
    for (const bitsim::costmodel::GemmWork& gw : w.gemms)
    {
      if (gw.layer.index != g.layer || gw.phase != g.phase) continue;
      const std::int64_t batch_dim = g.phase == Phase::BackwardWeight ? gw.shape.k : gw.shape.m;
      const std::int64_t rec_dim = g.phase == Phase::BackwardWeight ? g.k : g.m;
      if (batch_dim == rec_dim) repeat_full += gw.repeat;
      else if (batch_dim * 32 == rec_dim * 12) repeat_rest += gw.repeat;
    }
    EXPECT_EQ(repeat_full, 18) << g.layer;  // 9 full batches x 2 epochs
    EXPECT_EQ(repeat_rest, 2) << g.layer;   // the batch of 12, once per epoch
  }
  double sr_bd = 0, requant = 0, want_sr_bd = 0, want_requant = 0;
  for (const bitsim::costmodel::GemmWork& gw : w.gemms) {
    const double mk = double(gw.shape.m) * double(gw.shape.k), mn = double(gw.shape.m) * double(gw.shape.n);
    if (gw.phase == bitsim::costmodel::Phase::BackwardData) want_sr_bd += mk * gw.repeat;
    if (gw.phase == bitsim::costmodel::Phase::Forward) want_requant += mn * gw.repeat;
  }
  for (const bitsim::costmodel::ElementWork& e : w.elements) {
    if (e.phase == bitsim::costmodel::Phase::BackwardData && e.what == "stochastic rounding") {
      sr_bd += e.ops * e.repeat;
      EXPECT_EQ(e.random_bits, 16);
    }
    if (e.phase == bitsim::costmodel::Phase::Forward && e.what == "requantizer") requant += e.ops * e.repeat;
  }
  EXPECT_GT(want_sr_bd, 0);
  EXPECT_EQ(sr_bd, want_sr_bd);
  EXPECT_EQ(requant, want_requant);
}

// XNOR-Net's K in the cost: per forward output two scale-unit multiplies (K and alpha), per GEMM
// row K's k adds and one multiply; per element of dX (backward-data) and of E (backward-weight) one
// multiply by K; per element of E entering backward-data one multiply by the weight scale alpha.
TEST(NnCost, XnorActivationScalingCountsTheScaleUnit) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text(
      "weights = \"binary-scaled\"\nactivations = \"binary-scaled\"\nerrors = \"dfx<8>\"\naccumulator = \"int<32>\"\n")));
  const Dataset train_set = load_split(x, true);
  const bitsim::costmodel::Workload w = training_workload(x, record_training_step(x, train_set), RunVolume{300, 100, 1, 32, 256, 1000});
  using bitsim::costmodel::OpKind;
  using P = bitsim::costmodel::Phase;
  std::map<std::pair<P, OpKind>, double> want, got;
  for (const bitsim::costmodel::GemmWork& g : w.gemms) {
    const double m = double(g.shape.m), n = double(g.shape.n), k = double(g.shape.k);
    if (g.phase == P::Forward) {
      want[{P::Forward, OpKind::Multiply}] += (2 * m * n + m) * g.repeat;
      want[{P::Forward, OpKind::Add}] += m * k * g.repeat;
    }
    if (g.phase == P::BackwardData) want[{P::BackwardData, OpKind::Multiply}] += (m * n + m * k) * g.repeat;
    if (g.phase == P::BackwardWeight) want[{P::BackwardWeight, OpKind::Multiply}] += k * m * g.repeat;
  }
  for (const bitsim::costmodel::ElementWork& e : w.elements)
    if (e.what == "scale unit" && e.phase != P::Inference) got[{e.phase, e.kind}] += e.ops * e.repeat;
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(got, want);
}

// A binary operand against a wider one (BNN's backward passes: errors times +-1 weights, errors times
// +-1 activations) makes every product a sign flip: the PEs add or subtract, no multiplier is costed;
// both operands binary is the XNOR-popcount array.
TEST(NnCost, BinaryOperandsAgainstWiderOnesAreAddsNotMultiplies) {
  TempDir t;
  const Experiment x = Experiment::load(t.write("x.toml", experiment_text(
      "weights = \"binary\"\nactivations = \"binary\"\nerrors = \"dfx<8>\"\naccumulator = \"int<24>\"\n")));
  const Dataset train_set = load_split(x, true);
  const bitsim::costmodel::Workload w = training_workload(x, record_training_step(x, train_set), RunVolume{300, 100, 1, 32, 256, 1000});
  using P = bitsim::costmodel::Phase;
  int sign = 0, xnor = 0;
  for (const bitsim::costmodel::GemmWork& g : w.gemms) {
    const bool forward = g.phase == P::Forward || g.phase == P::Inference;
    EXPECT_EQ(g.xnor, forward) << to_string(g.phase);
    EXPECT_EQ(g.sign_operand, !forward) << to_string(g.phase);
    sign += g.sign_operand, xnor += g.xnor;
  }
  EXPECT_GT(sign, 0);
  EXPECT_GT(xnor, 0);
  const bitsim::costmodel::RunCost c = bitsim::costmodel::evaluate(x.hardware, w, 1);
  for (const auto& [phase, line] : c.by_phase) {
    if (phase != P::BackwardData && phase != P::BackwardWeight) continue;
    EXPECT_EQ(line.energy_pj.count("mac multiplier"), 0u) << to_string(phase);
    EXPECT_GT(line.energy_pj.at("adder"), 0) << to_string(phase);
  }
}

// Stream ids: every (step, layer, class, variant) gets its own range of 2^28 element streams, and
// a field that does not fit throws instead of wrapping into a neighbour's range.
TEST(NnStreams, DistinctTensorsNeverShareAStream) {
  std::set<std::uint64_t> bases;
  std::size_t tensors = 0;
  const std::uint64_t last_step = (std::uint64_t(1) << StreamId::kStepBits) - 1;
  const std::uint64_t last_layer = (std::uint64_t(1) << StreamId::kLayerBits) - 1;
  for (std::uint64_t step : {std::uint64_t(0), std::uint64_t(1), std::uint64_t(4095), last_step})
    for (std::uint64_t layer : {std::uint64_t(0), std::uint64_t(1), std::uint64_t(255), std::uint64_t(256), last_layer})
      for (int c = 0; c <= int(TensorClass::Update); ++c)
        for (std::uint64_t variant = 0; variant < 4; ++variant) {
          const std::uint64_t b = StreamId{step, layer, TensorClass(c), variant}.base();
          EXPECT_EQ(b % (std::uint64_t(1) << StreamId::kElementBits), 0u);
          bases.insert(b);
          ++tensors;
        }
  // Distinct bases, each the start of a 2^28-aligned range: the ranges cannot overlap.
  EXPECT_EQ(bases.size(), tensors);
  // The accumulator of a backward-weight GEMM (variant 2) and the scaled errors (variant 1) of the
  // same layer and step, which shared bit 27 in a hand-packed layout.
  EXPECT_NE(StreamId({7, 3, TensorClass::Accumulator, 2}).base(), StreamId({7, 3, TensorClass::Errors, 1}).base());
  EXPECT_THROW(StreamId({last_step + 1, 0, TensorClass::Weights, 0}).base(), std::out_of_range);
  EXPECT_THROW(StreamId({0, last_layer + 1, TensorClass::Weights, 0}).base(), std::out_of_range);
  EXPECT_THROW(StreamId({0, 0, TensorClass::Weights, 4}).base(), std::out_of_range);
  EXPECT_THROW(StreamId({0, 0, TensorClass::Weights, 0}).stream(1, (std::uint64_t(1) << 28) + 1), std::out_of_range);
  EXPECT_NO_THROW(StreamId({0, 0, TensorClass::Weights, 0}).stream(1, std::uint64_t(1) << 28));
}
