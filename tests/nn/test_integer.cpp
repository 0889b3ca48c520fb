// Integer-only inference against an independent per-element reference: direct convolutions and
// dot products in int64 over the stages' integer parameters, requantized with gemmlowp's own
// fixedpoint.h (Debian libgemmlowp-dev) and TFLite's formulas, compared code for code at every
// stage; and the quantization recipe (ranges, zero points, weight codes, multipliers) against its
// definitions.
#include <gtest/gtest.h>

#include <gemmlowp/fixedpoint/fixedpoint.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <numeric>
#include <set>

#include "bitsim/nn/integer.hpp"
#include "bitsim/nn/parallel.hpp"
#include "bitsim/nn/trainer.hpp"
#include "temp_dir.hpp"

using namespace bitsim::nn;
namespace fs = std::filesystem;

namespace {

using Op = IntegerStage::Op;

// Every kind of stage: a convolution with a BatchNorm and HardTanh fused (so that the next
// convolution pads an input whose zero point is not 0), a convolution with a ReLU6, a residual
// connection that keeps a ReLU from fusing, pooling of both kinds, a standalone ReLU, a strided convolution with a ReLU,
// flatten, dropout and a classifier.
const char* kNetwork = R"(name = "integer"
seed = 11
[data]
dataset = "synthetic"
synthetic_train = 512
synthetic_test = 64
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 3, padding = 1 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "conv2d", out = 4, kernel = 3, padding = 1 },
  { type = "relu6" },
  { type = "residual", from = 2 },
  { type = "maxpool", kernel = 2 },
  { type = "relu" },
  { type = "conv2d", out = 6, kernel = 3, stride = 2 },
  { type = "relu" },
  { type = "avgpool", kernel = 2 },
  { type = "flatten" },
  { type = "dropout", p = 0.1 },
  { type = "linear", out = 10 },
]
[train]
batch = 32
)";

// kNetwork with its layers replaced by `layers` (the entries between "layers = [" and "]").
std::string with_layers(const std::string& layers) {
  const std::string text = kNetwork;
  const auto a = text.find("layers = ["), b = text.find("]\n[train]");
  return text.substr(0, a) + "layers = [" + layers + text.substr(b);
}

struct Fixture {
  test::TempDir dir;
  Experiment x;
  Dataset train, test;
  Network net;

  explicit Fixture(const std::string& text = kNetwork) {
    const fs::path p = dir.path / "integer.toml";
    std::ofstream(p) << text;
    x = Experiment::load(p.string());
    train = load_split(x, true);
    test = load_split(x, false);
    net = build_network(x, {x.batch, 1, 28, 28});
    // A BatchNorm whose folding changes the weights: random statistics and affine.
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0.5, 2.0), c(-0.5, 0.5);
    for (auto& l : net.layers) {
      if (l->type() != "batchnorm") continue;
      for (Param* p : l->params())
        for (float& v : p->value.v) v = float(p->name == "gamma" ? u(rng) : c(rng));
      auto bufs = l->buffers();
      for (double& m : *bufs[0]) m = c(rng);
      for (double& v : *bufs[1]) v = u(rng);
    }
  }
  Tensor batch(std::int64_t n) const {
    Tensor t({n, 1, 28, 28});
    std::copy(test.images.begin(), test.images.begin() + n * 28 * 28, t.v.begin());
    return t;
  }
};

// TFLite's MultiplyByQuantizedMultiplier on gemmlowp's primitives (the left shift saturating, as
// bitsim documents it; TFLite leaves its overflow undefined).
std::int32_t tflite_multiply(std::int32_t x, const bitsim::arith::Requantizer& r) {
  const int left = std::max(r.shift, 0), right = std::max(-r.shift, 0);
  const std::int64_t shifted = std::clamp<std::int64_t>(std::int64_t{x} << left, std::numeric_limits<std::int32_t>::min(),
                                                        std::numeric_limits<std::int32_t>::max());
  return gemmlowp::RoundingDivideByPOT(gemmlowp::SaturatingRoundingDoublingHighMul(std::int32_t(shifted), r.multiplier),
                                       right);
}

std::uint8_t output_code(std::int64_t acc, const bitsim::arith::Requantizer& r) {
  EXPECT_LE(std::abs(acc), std::int64_t{std::numeric_limits<std::int32_t>::max()}) << "the int32 accumulator overflowed";
  const std::int64_t v = std::int64_t{tflite_multiply(std::int32_t(acc), r)} + r.zero_point;
  return std::uint8_t(std::clamp<std::int64_t>(v, r.min, r.max));
}

std::int32_t weight(const IntegerStage& s, std::int64_t n, std::int64_t k) {
  const std::uint8_t c = s.weights[std::size_t(n * s.k + k)];
  return (s.weights_signed ? std::int32_t(std::int8_t(c)) : std::int32_t(c)) - s.weight_zero_point;
}

// One stage computed element by element from its input codes (and the skip input).
QTensor reference_stage(const IntegerStage& s, const QTensor& in, const QTensor* skip, const Shape& out_shape) {
  QTensor out{out_shape, {}, s.out};
  std::int64_t size = 1;
  for (auto d : out_shape) size *= d;
  out.v.resize(std::size_t(size));
  const std::int64_t za = in.q.zero_point;
  switch (s.op) {
    case Op::Identity: out.v = in.v; break;
    case Op::Clamp:
      for (std::size_t i = 0; i < in.v.size(); ++i) out.v[i] = std::uint8_t(std::clamp<int>(in.v[i], s.clamp_min, s.clamp_max));
      break;
    case Op::MaxPool:
    case Op::AvgPool: {
      const auto h = in.shape[2], w = in.shape[3], ho = out_shape[2], wo = out_shape[3];
      for (std::int64_t p = 0; p < out_shape[0] * out_shape[1]; ++p)
        for (std::int64_t oy = 0; oy < ho; ++oy)
          for (std::int64_t ox = 0; ox < wo; ++ox) {
            std::vector<int> window;  // the elements inside the input (max pooling may pad)
            for (std::int64_t ky = 0; ky < s.kernel; ++ky)
              for (std::int64_t kx = 0; kx < s.kernel; ++kx) {
                const std::int64_t iy = oy * s.stride + ky - s.padding, ix = ox * s.stride + kx - s.padding;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) window.push_back(in.v[std::size_t((p * h + iy) * w + ix)]);
              }
            int r = 0;
            if (s.op == Op::MaxPool) {
              r = *std::max_element(window.begin(), window.end());
            } else {
              const int sum = std::accumulate(window.begin(), window.end(), 0), count = int(window.size());
              r = int(std::floor((double(sum) + count / 2) / count));  // TFLite: (sum + count / 2) / count
            }
            out.v[std::size_t((p * ho + oy) * wo + ox)] = std::uint8_t(r);
          }
      break;
    }
    case Op::GlobalAvgPool: {
      const std::int64_t hw = in.shape[2] * in.shape[3];
      for (std::int64_t p = 0; p < out_shape[0] * out_shape[1]; ++p) {
        const auto first = in.v.begin() + p * hw;
        const long sum = std::accumulate(first, first + hw, 0L);
        out.v[std::size_t(p)] = std::uint8_t(std::lround(std::floor((double(sum) + double(hw / 2)) / double(hw))));
      }
      break;
    }
    case Op::Add:
      for (std::size_t i = 0; i < out.v.size(); ++i) {
        // TFLite reference_ops::Add (uint8).
        const std::int32_t a = (std::int32_t(in.v[i]) - in.q.zero_point) * (1 << s.left_shift);
        const std::int32_t b = (std::int32_t(skip->v[i]) - skip->q.zero_point) * (1 << s.left_shift);
        const std::int32_t sum = tflite_multiply(a, s.in1) + tflite_multiply(b, s.in2);
        out.v[i] = output_code(sum, s.requant[0]);
      }
      break;
    case Op::Gemm: {
      auto rq = [&](std::int64_t n) { return s.requant[s.requant.size() == 1 ? 0 : std::size_t(n)]; };
      if (!s.conv) {
        for (std::int64_t m = 0; m < out_shape[0]; ++m)
          for (std::int64_t n = 0; n < s.n; ++n) {
            std::int64_t acc = s.bias[std::size_t(n)];
            for (std::int64_t k = 0; k < s.k; ++k) acc += (in.v[std::size_t(m * s.k + k)] - za) * std::int64_t{weight(s, n, k)};
            out.v[std::size_t(m * s.n + n)] = output_code(acc, rq(n));
          }
        break;
      }
      const auto& c = *s.conv;
      const auto ho = out_shape[2], wo = out_shape[3];
      // Output channel n of a grouped convolution reads its group's cg input channels.
      const std::int64_t cg = c.in_channels / s.groups, ng = s.n / s.groups;
      for (std::int64_t b = 0; b < out_shape[0]; ++b)
        for (std::int64_t n = 0; n < s.n; ++n)
          for (std::int64_t oy = 0; oy < ho; ++oy)
            for (std::int64_t ox = 0; ox < wo; ++ox) {
              std::int64_t acc = s.bias[std::size_t(n)];
              for (std::int64_t ch = 0; ch < cg; ++ch)
                for (std::int64_t ky = 0; ky < c.kernel_h; ++ky)
                  for (std::int64_t kx = 0; kx < c.kernel_w; ++kx) {
                    const std::int64_t iy = oy * c.stride + ky - c.padding, ix = ox * c.stride + kx - c.padding;
                    if (iy < 0 || iy >= c.height || ix < 0 || ix >= c.width) continue;  // padding: real 0
                    const std::int64_t channel = n / ng * cg + ch;
                    const std::int64_t a = in.v[std::size_t(((b * c.in_channels + channel) * c.height + iy) * c.width + ix)] - za;
                    acc += a * weight(s, n, (ch * c.kernel_h + ky) * c.kernel_w + kx);
                  }
              out.v[std::size_t(((b * s.n + n) * ho + oy) * wo + ox)] = output_code(acc, rq(n));
            }
      break;
    }
  }
  return out;
}

// Runs the reference over every stage from its own input codes and compares each stage's output
// with the network's; returns the number of stages checked.
int check_against_reference(IntegerNetwork& q, Network& net, const Tensor& x) {
  q.forward(x);
  const QuantParams& qi = q.input_params();
  std::vector<QTensor> ref(net.layers.size() + 1);
  ref[0] = {x.shape, std::vector<std::uint8_t>(x.v.size()), qi};
  for (std::size_t i = 0; i < x.v.size(); ++i)
    ref[0].v[i] = std::uint8_t(std::clamp(std::round(double(x.v[i]) / qi.scale) + qi.zero_point, 0.0, 255.0));
  EXPECT_EQ(ref[0].v, q.activation(0).v) << "input";
  int checked = 0;
  for (const IntegerStage& s : q.stages()) {
    Shape shape = net.shapes()[std::size_t(s.last + 1)];
    shape[0] = x.dim(0);
    ref[std::size_t(s.last + 1)] = reference_stage(s, ref[std::size_t(s.input)], s.skip >= 0 ? &ref[std::size_t(s.skip)] : nullptr, shape);
    const QTensor& got = q.activation(s.last + 1);
    const QTensor& want = ref[std::size_t(s.last + 1)];
    EXPECT_EQ(got.shape, want.shape) << "stage of layers " << s.first << ".." << s.last;
    std::size_t differ = 0;
    for (std::size_t i = 0; i < want.v.size() && i < got.v.size(); ++i) differ += got.v[i] != want.v[i];
    EXPECT_EQ(differ, 0u) << "stage of layers " << s.first << ".." << s.last << ": " << differ << " of " << want.v.size()
                          << " codes differ";
    // A meaningful comparison: the stage's codes are not all one value.
    EXPECT_GT(std::set<std::uint8_t>(want.v.begin(), want.v.end()).size(), 1u) << "layers " << s.first << ".." << s.last;
    ++checked;
  }
  return checked;
}

}  // namespace

TEST(QuantParams, RangesFromGemmlowpsRecipe) {
  // [-1, 1]: scale 2/255, zero point 127.5 from either end; the smaller error is from the min, so 128.
  QuantParams p = QuantParams::from_range(-1, 1);
  EXPECT_DOUBLE_EQ(p.scale, 2.0 / 255);
  EXPECT_EQ(p.zero_point, 128);
  // Ranges that do not hold 0 are widened to it; 0 is then an end, and exactly the code 0 or 255.
  p = QuantParams::from_range(0.5, 6);
  EXPECT_DOUBLE_EQ(p.scale, 6.0 / 255);
  EXPECT_EQ(p.zero_point, 0);
  p = QuantParams::from_range(-3, -1);
  EXPECT_DOUBLE_EQ(p.scale, 3.0 / 255);
  EXPECT_EQ(p.zero_point, 255);
  // [-0.2, 1]: 255 * 0.2 / 1.2 = 42.5 from the min end (error 42.5 against 255 + 212.5): 43.
  p = QuantParams::from_range(-0.2, 1);
  EXPECT_EQ(p.zero_point, 43);
  EXPECT_EQ(QuantParams::from_range(0, 0).scale, 1);
  // Every range: 0 is a code, and values inside the range round to within a step.
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(-10, 10);
  for (int t = 0; t < 2000; ++t) {
    const double a = u(rng), b = u(rng);
    const QuantParams q = QuantParams::from_range(std::min(a, b), std::max(a, b));
    EXPECT_EQ(q.dequantize(std::uint8_t(q.zero_point)), 0.0);
    EXPECT_EQ(q.quantize(0.0f), q.zero_point);
    for (int i = 0; i < 20; ++i) {
      const float v = float(std::min(a, b) + (std::max(a, b) - std::min(a, b)) * i / 19);
      EXPECT_LE(std::abs(q.dequantize(q.quantize(v)) - v), q.scale * (1 + 1e-9)) << v;
    }
  }
  // Rounding is half away from zero, and out-of-range values saturate.
  const QuantParams unit{1.0, 10};
  EXPECT_EQ(unit.quantize(2.5f), 13);
  EXPECT_EQ(unit.quantize(-2.5f), 7);
  EXPECT_EQ(unit.quantize(1e9f), 255);
  EXPECT_EQ(unit.quantize(-1e9f), 0);
}

TEST(IntegerOptions, CalibrationSpecs) {
  IntegerOptions o;
  o.set_calibration("percentile:99.9");
  EXPECT_EQ(o.calibration, Calibration::Percentile);
  EXPECT_DOUBLE_EQ(o.percentile, 99.9);
  o.set_calibration("minmax");
  EXPECT_EQ(o.calibration, Calibration::MinMax);
  for (const char* bad : {"", "max", "percentile:", "percentile:0", "percentile:101", "percentile:9x", "percentile99"})
    EXPECT_THROW(o.set_calibration(bad), std::invalid_argument) << bad;
}

TEST(IntegerNetwork, EveryStageEqualsThePerElementReference) {
  for (const bool per_channel : {true, false})
    for (const Calibration cal : {Calibration::MinMax, Calibration::Percentile}) {
      Fixture f;
      IntegerOptions opt;
      opt.per_channel = per_channel;
      opt.calibration = cal;
      opt.percentile = 99.9;
      opt.batches = 2;
      opt.batch = 64;
      IntegerNetwork q(f.x, f.net, f.train, opt);
      // Stages: conv+bn+hardtanh, conv+relu6, add, maxpool, clamp, conv+relu, avgpool, flatten,
      // dropout, linear.
      ASSERT_EQ(q.stages().size(), 10u);
      EXPECT_EQ(q.stages()[0].last, 2);
      EXPECT_EQ(q.stages()[2].op, Op::Add);
      EXPECT_EQ(check_against_reference(q, f.net, f.batch(16)), 10) << per_channel;
    }
}

TEST(IntegerNetwork, GlobalAveragePoolingEqualsThePerElementReference) {
  // A MobileNet-style tail: convolution, ReLU6, the mean of each 28 x 28 plane, a classifier.
  const std::string text = with_layers(R"(
  { type = "conv2d", out = 5, kernel = 3, padding = 1 },
  { type = "relu6" },
  { type = "globalavgpool" },
  { type = "flatten" },
  { type = "linear", out = 10 },
)");
  Fixture f(text);
  IntegerOptions opt;
  opt.batches = 2;
  IntegerNetwork q(f.x, f.net, f.train, opt);
  ASSERT_EQ(q.stages().size(), 4u);
  EXPECT_EQ(q.stages()[1].op, Op::GlobalAvgPool);
  EXPECT_EQ(check_against_reference(q, f.net, f.batch(16)), 4);
}

TEST(IntegerNetwork, PaddedPoolingAndProjectionShortcutEqualThePerElementReference) {
  // A ResNet stem and block: a padded 3x3 stride-2 max pool (PyTorch's ResNet stem), then the main
  // path's strided convolution and the 1x1 strided projection both read the block's input (layer
  // 3's output, which no fusion may hide), and TFLite's ADD joins them.
  const std::string text = with_layers(R"(
  { type = "conv2d", out = 4, kernel = 3, padding = 1 },
  { type = "batchnorm" },
  { type = "relu" },
  { type = "maxpool", kernel = 3, stride = 2, padding = 1 },
  { type = "conv2d", out = 6, kernel = 3, stride = 2, padding = 1 },
  { type = "batchnorm" },
  { type = "conv2d", out = 6, kernel = 1, stride = 2, input = 3 },
  { type = "batchnorm" },
  { type = "residual", from = 5 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out = 10 },
)");
  Fixture f(text);
  IntegerOptions opt;
  opt.batches = 2;
  IntegerNetwork q(f.x, f.net, f.train, opt);
  // Stages: conv+bn+relu, maxpool, conv+bn (main), conv+bn (projection, reading activation 4),
  // add, clamp, flatten, linear.
  ASSERT_EQ(q.stages().size(), 8u);
  EXPECT_EQ(q.stages()[1].padding, 1);
  EXPECT_EQ(q.stages()[2].input, 4);
  EXPECT_EQ(q.stages()[3].input, 4);
  EXPECT_EQ(q.stages()[3].last, 7);
  EXPECT_EQ(q.stages()[4].op, Op::Add);
  EXPECT_EQ(check_against_reference(q, f.net, f.batch(16)), 8);
}

TEST(IntegerNetwork, GroupedAndDepthwiseConvolutionsEqualThePerElementReference) {
  // MobileNet's blocks: a depthwise convolution (groups = channels) with BatchNorm and ReLU6, a
  // pointwise one, and a grouped strided convolution (2 groups of 4 channels, 3 outputs each).
  const std::string text = with_layers(R"(
  { type = "conv2d", out = 4, kernel = 3, padding = 1 },
  { type = "relu6" },
  { type = "conv2d", out = 4, kernel = 3, padding = 1, groups = 4 },
  { type = "batchnorm" },
  { type = "relu6" },
  { type = "conv2d", out = 8, kernel = 1 },
  { type = "relu6" },
  { type = "conv2d", out = 6, kernel = 3, stride = 2, groups = 2 },
  { type = "relu" },
  { type = "globalavgpool" },
  { type = "flatten" },
  { type = "linear", out = 10 },
)");
  for (const bool per_channel : {true, false}) {
    Fixture f(text);
    IntegerOptions opt;
    opt.batches = 2;
    opt.per_channel = per_channel;
    IntegerNetwork q(f.x, f.net, f.train, opt);
    ASSERT_EQ(q.stages().size(), 7u);
    EXPECT_EQ(q.stages()[1].groups, 4);
    EXPECT_EQ(q.stages()[1].k, 9);
    EXPECT_EQ(q.stages()[3].groups, 2);
    EXPECT_EQ(check_against_reference(q, f.net, f.batch(16)), 7) << per_channel;
    // The cost sees one group's GEMM, run once per group.
    std::vector<GemmRecord> recs;
    q.forward(f.batch(4), &recs);
    ASSERT_EQ(recs.size(), 5u);
    EXPECT_EQ(recs[1].groups, 4);
    EXPECT_EQ(recs[1].n, 1);
    EXPECT_EQ(recs[1].conv->in_channels, 1);
    EXPECT_EQ(recs[3].groups, 2);
    EXPECT_EQ(recs[3].n, 3);
    EXPECT_EQ(recs[3].k, 4 * 9);
  }
}

TEST(IntegerNetwork, RecipeMatchesItsDefinitions) {
  Fixture f;
  IntegerOptions opt;
  opt.batches = 2;
  IntegerNetwork q(f.x, f.net, f.train, opt);
  std::vector<QuantParams> act(f.net.layers.size() + 1);
  act[0] = q.input_params();
  for (const IntegerStage& s : q.stages()) {
    const QuantParams in = act[std::size_t(s.input)];
    act[std::size_t(s.last + 1)] = s.out;
    if (s.op != Op::Gemm) continue;
    const Tensor& w = f.net.layers[std::size_t(s.first)]->params()[0]->value;  // BatchNorm folded
    for (std::int64_t n = 0; n < s.n; ++n) {
      double mx = 0;
      int max_code = 0;
      for (std::int64_t k = 0; k < s.k; ++k) mx = std::max(mx, std::abs(double(w.v[std::size_t(n * s.k + k)])));
      EXPECT_DOUBLE_EQ(s.weight_scale[std::size_t(n)], mx / 127);
      for (std::int64_t k = 0; k < s.k; ++k) {
        const int c = weight(s, n, k);
        max_code = std::max(max_code, std::abs(c));
        EXPECT_LE(std::abs(double(w.v[std::size_t(n * s.k + k)]) - c * s.weight_scale[std::size_t(n)]),
                  s.weight_scale[std::size_t(n)] / 2 * (1 + 1e-9));
      }
      EXPECT_EQ(max_code, 127);
      // The multiplier and shift stand for S_a S_w / S_y to within half a unit of the Q31 mantissa.
      const auto& r = s.requant[std::size_t(n)];
      const double real = in.scale * s.weight_scale[std::size_t(n)] / s.out.scale;
      EXPECT_GE(r.multiplier, 1 << 30);
      EXPECT_LE(std::abs(std::ldexp(double(r.multiplier), r.shift - 31) - real), std::ldexp(1.0, r.shift - 32));
      EXPECT_EQ(r.zero_point, s.out.zero_point);
    }
  }
  // The fused HardTanh clamps at the codes of -1 and 1 (the next convolution's padding is its
  // zero point, not 0); the fused ReLU at the output zero point.
  const IntegerStage& tanh = q.stages()[0];
  EXPECT_EQ(tanh.clamp_min, tanh.out.quantize(-1.0f));
  EXPECT_EQ(tanh.clamp_max, tanh.out.quantize(1.0f));
  EXPECT_GT(tanh.out.zero_point, 0);
  EXPECT_EQ(q.stages()[5].last, 9);
  EXPECT_EQ(q.stages()[5].clamp_min, q.stages()[5].out.zero_point);
  // The fused ReLU6 clamps at the codes of 0 and 6.
  EXPECT_EQ(q.stages()[1].last, 4);
  EXPECT_EQ(q.stages()[1].clamp_min, q.stages()[1].out.zero_point);
  EXPECT_EQ(q.stages()[1].clamp_max, q.stages()[1].out.quantize(6.0f));
}

TEST(IntegerNetwork, SameCodesForAnyThreadCount) {
  Fixture f;
  IntegerOptions opt;
  opt.batches = 2;
  IntegerNetwork q(f.x, f.net, f.train, opt);
  const Tensor x = f.batch(64);
  set_threads(1);
  const std::vector<std::uint8_t> one = q.forward(x).v;
  set_threads(2);
  EXPECT_EQ(q.forward(x).v, one);
  set_threads(0);
}

TEST(IntegerNetwork, LayersThatCannotRunInIntegersAreNamed) {
  auto message = [](const std::string& layers) {
    Fixture f(with_layers(layers));
    try {
      IntegerNetwork q(f.x, f.net, f.train, IntegerOptions{});
    } catch (const IntegerError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(R"({ type = "flatten" }, { type = "linear", out = 10 }, { type = "sign" }, { type = "linear", out = 10 },)"),
            "layer 2 (sign): binarized layers do not run as uint8 integers (their inference is XNOR-popcount)");
  EXPECT_EQ(message(R"({ type = "maxpool", kernel = 2 }, { type = "batchnorm" }, { type = "flatten" }, { type = "linear", out = 10 },)"),
            "layer 1 (batchnorm): a BatchNorm that does not follow a GEMM layer cannot be folded into integer weights");
}

// Quantization-aware training's fake quantizers against their definitions, computed here.
TEST(QatNumerics, SymmetricCodesPerRow) {
  const Numerics q = Numerics::parse("symmetric<8>");
  std::mt19937_64 rng(2);
  std::normal_distribution<float> g(0, 0.3f);
  std::vector<float> w(6 * 50);
  for (float& v : w) v = g(rng);
  std::fill(w.begin() + 250, w.end(), 0.0f);  // an all-zero row: scale 1, codes 0
  std::vector<float> codes = w, scale;
  const bitsim::arith::Format f = q.apply(codes, {6, 50}, {}, 0, &scale);
  EXPECT_EQ(f.spec(), "fixed<8,0>");
  ASSERT_EQ(scale.size(), 6u);
  for (int r = 0; r < 6; ++r) {
    double mx = 0;
    for (int c = 0; c < 50; ++c) mx = std::max(mx, std::abs(double(w[std::size_t(r * 50 + c)])));
    EXPECT_EQ(scale[std::size_t(r)], mx > 0 ? float(mx / 127) : 1.0f) << r;
    for (int c = 0; c < 50; ++c) {
      const double want = std::clamp(std::round(double(w[std::size_t(r * 50 + c)]) / double(scale[std::size_t(r)])), -127.0, 127.0);
      EXPECT_EQ(codes[std::size_t(r * 50 + c)], float(want)) << r << " " << c;
    }
  }
  EXPECT_THROW(Numerics::parse("symmetric<1>"), bitsim::arith::FormatError);
  EXPECT_THROW(Numerics::parse("affine<17>"), bitsim::arith::FormatError);
}

TEST(QatNumerics, AffineCodesFromTheRangeOrTheTensor) {
  Numerics q = Numerics::parse("affine<8>");
  std::vector<float> x = {-1.0f, -0.25f, 0.0f, 0.1f, 0.5f, 2.0f, 3.7f, -0.004f, 1e-3f};
  for (const bool ranged : {false, true}) {
    q.range = ranged ? std::optional<std::pair<double, double>>(std::pair{-0.5, 1.5}) : std::nullopt;
    const QuantParams p = ranged ? QuantParams::from_range(-0.5, 1.5) : QuantParams::from_range(-1.0, 3.7);
    std::vector<float> codes = x, scale;
    q.apply(codes, {1, x.size()}, {}, 0, &scale);
    ASSERT_EQ(scale.size(), 1u);
    EXPECT_EQ(scale[0], float(p.scale));
    for (std::size_t i = 0; i < x.size(); ++i)
      EXPECT_EQ(codes[i], float(int(p.quantize(x[i])) - p.zero_point)) << ranged << " " << x[i];
  }
}

TEST(QatTraining, RangesAreMovingAveragesOfBatchExtremesAndTravelInTheCheckpoint) {
  // Two steps with a learning rate too small to change a weight, so that the hidden layer's outputs
  // in training are those of the initial network, which this test computes batch by batch.
  test::TempDir dir;
  const fs::path p = dir.path / "qat.toml";
  std::ofstream(p) << R"(name = "qat"
seed = 3
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 32
[model]
layers = [
  { type = "flatten" },
  { type = "linear", out = 16 },
  { type = "linear", out = 10 },
]
[train]
epochs = 1
batch = 32
optimizer = "sgd"
lr = 1e-30
[numerics]
weights = "symmetric<8>"
activations = "affine<8>"
)";
  const Experiment x = Experiment::load(p.string());
  Network initial = build_network(x, {32, 1, 28, 28});
  RunOptions ro;
  ro.out_dir = (dir.path / "run").string();
  train(x, ro);
  const Dataset d = load_split(x, true);
  const std::vector<std::int64_t> order = epoch_order(x, d.n, 0);
  std::mt19937_64 rng(1);
  Context ctx{false, x.seed, 0, &rng, nullptr, nullptr};
  double lo[2], hi[2];
  for (int b = 0; b < 2; ++b) {
    Tensor xb;
    std::vector<std::uint8_t> yb;
    gather_batch(d, order, b * 32, 32, xb, yb);
    initial.forward(xb, ctx);
    const std::vector<float>& h = initial.activation(2).v;  // the second linear layer's input
    const auto [a, z] = std::minmax_element(h.begin(), h.end());
    lo[b] = *a, hi[b] = *z;
  }
  Network net = build_network(x, {32, 1, 28, 28});
  EXPECT_FALSE(net.layers[2]->activation_range());
  load_checkpoint(ro.out_dir + "/checkpoint.bin", net, nullptr);
  const auto r = net.layers[2]->activation_range();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 0.999 * lo[0] + (1 - 0.999) * lo[1]);
  EXPECT_EQ(r->second, 0.999 * hi[0] + (1 - 0.999) * hi[1]);
  EXPECT_NE(hi[0], hi[1]);  // the two batches differ, so the average is not one batch's
}
