// Binarized inference (XNOR-popcount with BatchNorm and sign folded into thresholds) against the
// float-BatchNorm network it comes from: every threshold stage's bits equal the signs the float
// network's next layer takes, and the logits are bit for bit the float network's.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "bitsim/arith/binary.hpp"
#include "bitsim/nn/popcount.hpp"
#include "bitsim/nn/trainer.hpp"
#include "temp_dir.hpp"

using namespace bitsim::nn;

namespace {

// Binary weights and activations everywhere but the first GEMM layer's input (layer `first`), which
// is 8-bit dynamic fixed point; `numerics`: other per-layer overrides instead.
std::string experiment(const std::string& layers, const std::string& numerics = "", int first = 1) {
  return R"(name = "binarized"
seed = 4
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 200
[model]
layers = [)" + layers + R"(]
[train]
batch = 50
[numerics]
weights = "binary"
activations = "binary"
errors = "dfx<8>"
accumulator = "int<24>"
)" + (numerics.empty() ? "[[numerics.layer]]\nindex = " + std::to_string(first) + "\nactivations = \"dfx<8>\"\n" : numerics);
}

const char* kMlp = R"(
  { type = "flatten" },
  { type = "linear", out = 48 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "linear", out = 40 },
  { type = "batchnorm" },
  { type = "sign" },
  { type = "dropout", p = 0.2 },
  { type = "linear", out = 10 },
  { type = "batchnorm" },
)";

const char* kCnn = R"(
  { type = "conv2d", out = 6, kernel = 3, padding = 1 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "maxpool", kernel = 2 },
  { type = "conv2d", out = 8, kernel = 3, padding = 1, stride = 2 },
  { type = "batchnorm" },
  { type = "hardtanh" },
  { type = "maxpool", kernel = 3, stride = 2, padding = 1 },
  { type = "flatten" },
  { type = "linear", out = 10 },
  { type = "batchnorm" },
)";

struct Fixture {
  test::TempDir dir;
  Experiment x;
  Dataset test;
  Network net;
  explicit Fixture(const std::string& text) {
    const auto p = dir.path / "b.toml";
    std::ofstream(p) << text;
    x = Experiment::load(p.string());
    test = load_split(x, false);
    net = build_network(x, {x.batch, 1, 28, 28});
    // BatchNorm statistics and affines of both signs, so thresholds of both directions occur.
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<double> u(-1.5, 1.5), var(0.2, 30.0);
    for (auto& l : net.layers) {
      if (l->type() != "batchnorm") continue;
      for (Param* p : l->params())
        for (float& v : p->value.v) v = float(u(rng));
      auto b = l->buffers();
      for (double& m : *b[0]) m = u(rng) * 4;
      for (double& v : *b[1]) v = var(rng);
    }
  }
};

// The float network's forward on the test set and the popcount network's: the same logits bit for
// bit, and each threshold stage's bits the signs of the float activation after it.
void check(Fixture& f) {
  PopcountNetwork p(f.x, f.net);
  std::mt19937_64 rng(1);
  Context ctx{false, f.x.seed, 0, &rng, nullptr, nullptr};
  Tensor xb({f.test.n, 1, 28, 28});
  std::copy(f.test.images.begin(), f.test.images.end(), xb.v.begin());
  const Tensor logits = p.forward(xb);
  const Tensor& ref = f.net.forward(xb, ctx);
  ASSERT_EQ(logits.shape, ref.shape);
  EXPECT_EQ(std::memcmp(logits.data(), ref.data(), ref.v.size() * sizeof(float)), 0) << "logits differ";
  int thresholds = 0, inverted = 0;
  for (std::size_t si = 0; si < p.stages().size(); ++si) {
    const PopcountStage& s = p.stages()[si];
    if (s.op != PopcountStage::Op::Threshold) continue;
    ++thresholds;
    for (const auto& t : s.thresholds) inverted += t.invert;
    const Tensor& act = f.net.activation(std::size_t(s.last + 1));
    const std::vector<std::uint8_t>& bits = p.bits(si);
    ASSERT_EQ(bits.size(), act.v.size());
    std::size_t differ = 0, ones = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) {
      differ += bits[i] != (bitsim::arith::binarize(act.v[i]) > 0);
      ones += bits[i];
    }
    EXPECT_EQ(differ, 0u) << "stage of layers " << s.first << ".." << s.last;
    EXPECT_GT(ones, 0u);
    EXPECT_LT(ones, bits.size());
  }
  EXPECT_EQ(thresholds, 2);
  EXPECT_GT(inverted, 0) << "no BatchNorm with a negative scale: the inverted compare went untested";
}

}  // namespace

TEST(Popcount, MlpEqualsTheFloatBatchNormNetwork) {
  Fixture f(experiment(kMlp));
  check(f);
  // The hidden layer's neurons are XNOR-popcounts of bits; the first layer sums fixed-point codes.
  PopcountNetwork p(f.x, f.net);
  EXPECT_FALSE(p.stages()[1].binary_input);
  EXPECT_TRUE(p.stages()[2].binary_input);
}

TEST(Popcount, CnnWithPaddingAndPoolingEqualsTheFloatBatchNormNetwork) {
  Fixture f(experiment(kCnn, "", 0));
  check(f);
}

TEST(Popcount, EveryPopcountOfTheHiddenLayerAgainstItsThreshold) {
  // Exhaustively, p = 0..K for every neuron of the hidden layer: the float network's layers after
  // the GEMM (bias add, BatchNorm, sign) on the sum 2p - K, against the folded compare.
  Fixture f(experiment(kMlp));
  PopcountNetwork p(f.x, f.net);
  const PopcountStage& s = p.stages()[2];
  ASSERT_EQ(s.op, PopcountStage::Op::Threshold);
  ASSERT_TRUE(s.binary_input);
  const std::int64_t k = s.k, n = s.n;
  Tensor t({k + 1, n});
  const std::vector<float>& bias = f.net.layers[std::size_t(s.first)]->params().at(1)->value.v;
  for (std::int64_t pc = 0; pc <= k; ++pc)
    for (std::int64_t j = 0; j < n; ++j) {
      float y = float(2 * pc - k);
      y += bias[std::size_t(j)];
      t.v[std::size_t(pc * n + j)] = y;
    }
  std::mt19937_64 rng(1);
  Context ctx{false, f.x.seed, 0, &rng, nullptr, nullptr};
  Tensor out;
  for (int l = s.first + 1; l <= s.last; ++l) {
    f.net.layers[std::size_t(l)]->forward(t, out, ctx);
    std::swap(t, out);
  }
  int changes = 0;
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t pc = 0; pc <= k; ++pc) {
      const bool want = bitsim::arith::binarize(t.v[std::size_t(pc * n + j)]) > 0;
      EXPECT_EQ(s.thresholds[std::size_t(j)].fire(pc), want) << "neuron " << j << " popcount " << pc;
      changes += pc > 0 && want != (bitsim::arith::binarize(t.v[std::size_t((pc - 1) * n + j)]) > 0);
    }
  EXPECT_GT(changes, n / 2) << "too few neurons change inside 0..K for the check to mean much";
}

TEST(Popcount, NetworksThatAreNotBinarizedAreNamed) {
  auto message = [](const std::string& text) {
    Fixture f(text);
    try {
      PopcountNetwork p(f.x, f.net);
    } catch (const IntegerError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(experiment(kMlp, "[[numerics.layer]]\nindex = 1\nactivations = \"dfx<8>\"\nweights = \"fixed<8,4>\"\n")),
            "layer 1 (linear): popcount inference needs deterministic binary weights, not 'fixed<8,4> nearest-even saturate'");
  EXPECT_EQ(message(experiment(R"({ type = "flatten" }, { type = "linear", out = 16 }, { type = "relu" }, { type = "linear", out = 10 },)")),
            "layer 2 (relu): not part of a binarized network's inference (popcount)");
  EXPECT_EQ(message(experiment(kMlp, "[[numerics.layer]]\nindex = 1\nactivations = \"dfx<8>\"\n[[numerics.layer]]\nindex = 4\nactivations = \"fixed<8,4>\"\n")),
            "layer 1 (linear): popcount inference folds this layer's output into bits, but layer 4 (linear) reads it as 'fixed<8,4> nearest-even saturate'");
  // Branches and grouped convolutions are the executor's and integer-only inference's, not FINN's.
  EXPECT_EQ(message(experiment(R"({ type = "flatten" }, { type = "linear", out = 16 }, { type = "sign" }, { type = "linear", out = 16 },
    { type = "sign" }, { type = "linear", out = 16, input = 2 }, { type = "residual", from = 4 }, { type = "linear", out = 10 },)")),
            "layer 5 (linear) reads layer 2's output; popcount inference runs a chain of layers with residual adds, not branches");
  EXPECT_EQ(message(experiment(R"({ type = "conv2d", out = 4, kernel = 3, groups = 1 }, { type = "sign" }, { type = "conv2d", out = 4, kernel = 3, groups = 2 }, { type = "flatten" }, { type = "linear", out = 10 },)")),
            "layer 2 (conv2d) has 2 groups; popcount inference runs ungrouped convolutions");
}
