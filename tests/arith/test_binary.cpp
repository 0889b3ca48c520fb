// Binary and ternary quantizers: sign(0), exact stochastic probabilities by enumerating every
// random value, and scales checked against sums written out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "bitsim/arith/binary.hpp"

using namespace bitsim::arith;

TEST(Binary, SignOfZeroIsPlusOne) {
  EXPECT_EQ(binarize(0.0f), 1.0f);
  EXPECT_EQ(binarize(-0.0f), 1.0f);
  EXPECT_EQ(binarize(-1e-30f), -1.0f);
  EXPECT_EQ(binarize(3.0f), 1.0f);
}

// P(+1) = floor(p 2^k) / 2^k with p = clip((x+1)/2, 0, 1): count +1 over all 2^k random values.
TEST(Binary, StochasticProbabilityIsHardSigmoidExactly) {
  for (int k : {1, 3, 6, 10}) {
    const std::uint32_t n = 1u << k;
    for (float x : {-2.0f, -1.0f, -0.75f, -0.3f, 0.0f, 0.1f, 0.5f, 0.999f, 1.0f, 5.0f}) {
      const double p = std::min(1.0, std::max(0.0, (double(x) + 1.0) / 2.0));
      std::uint32_t plus = 0;
      for (std::uint32_t r = 0; r < n; ++r) plus += binarize_stochastic(x, r, k) > 0;
      EXPECT_EQ(plus, p >= 1.0 ? n : std::uint32_t(std::floor(p * n))) << "x=" << x << " k=" << k;
    }
  }
}

TEST(Binary, StochasticStreamIsThreadIndependentAndUnbiased) {
  const std::size_t n = 200000;
  std::vector<float> in(n, 0.2f), a(n), b(n);
  binarize_stochastic(in, a, SrStream{5, 1}, 0, 16);
  // The same elements computed in two halves, second half first.
  binarize_stochastic(std::span<const float>(in).subspan(n / 2), std::span<float>(b).subspan(n / 2), SrStream{5, 1}, n / 2, 16);
  binarize_stochastic(std::span<const float>(in).first(n / 2), std::span<float>(b).first(n / 2), SrStream{5, 1}, 0, 16);
  EXPECT_EQ(a, b);
  double plus = 0;
  for (float v : a) plus += v > 0;
  // P(+1) = 0.6; binomial standard deviation sqrt(n p q) ~ 219: allow 5 sigma.
  EXPECT_NEAR(plus, 0.6 * n, 5 * 219.1);
}

TEST(Binary, XnorScaleIsMeanAbsolutePerTensorAndPerChannel) {
  const std::vector<float> w{0.5f, -1.5f, 2.0f, -0.0f, 0.25f, -0.75f};
  std::vector<float> out(6), alpha(1), alpha2(2);
  binarize_scaled(w, 2, 3, alpha, out);
  EXPECT_FLOAT_EQ(alpha[0], (0.5f + 1.5f + 2.0f + 0.0f + 0.25f + 0.75f) / 6);
  EXPECT_FLOAT_EQ(out[1], -alpha[0]);
  EXPECT_FLOAT_EQ(out[3], alpha[0]);  // sign(-0) = +1
  binarize_scaled(w, 2, 3, alpha2, out);
  EXPECT_FLOAT_EQ(alpha2[0], 4.0f / 3);
  EXPECT_FLOAT_EQ(alpha2[1], 1.0f / 3);
  EXPECT_FLOAT_EQ(out[5], -1.0f / 3);
}

TEST(Ternary, TwnThresholdAndScale) {
  // mean |w| = (1 + 0.1 + 0.5 + 2 + 0.4 + 0) / 6 = 0.666..; delta = 0.7 * that = 0.4666..
  const std::vector<float> w{1.0f, -0.1f, 0.5f, -2.0f, 0.4f, 0.0f};
  std::vector<float> out(6), alpha(1);
  ternarize(w, 1, 6, 0.7, alpha, out);
  EXPECT_FLOAT_EQ(alpha[0], (1.0f + 0.5f + 2.0f) / 3);  // |w| above delta: 1, 0.5, 2
  const float a = alpha[0];
  EXPECT_EQ(out, (std::vector<float>{a, 0.0f, a, -a, 0.0f, 0.0f}));
  std::vector<float> zeros(4, 0.0f), zout(4), zalpha(1);
  ternarize(zeros, 1, 4, 0.7, zalpha, zout);
  EXPECT_EQ(zalpha[0], 0.0f);
  EXPECT_THROW(ternarize(w, 4, 2, 0.7, alpha, out), std::invalid_argument);
}

// The folded threshold fires at exactly the popcounts where BatchNorm + sign, evaluated directly,
// gives +1: random layers of both gamma signs, gamma = 0, and thresholds landing on exact ties.
TEST(BinaryThreshold, FoldedBatchNormAgreesWithTheFloatLayerAtEveryPopcount) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-3, 3);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::int64_t k = 1 + std::int64_t(rng() % 300);
    double gamma = u(rng), beta = u(rng), mean = u(rng) * double(k) / 4, var = std::abs(u(rng)) + 0.01;
    const double eps = 1e-5;
    if (trial % 10 == 0) gamma = 0;
    if (trial % 7 == 0) beta = 0, mean = double(2 * std::int64_t(rng() % std::uint64_t(k + 1)) - k);  // tie at x = mean
    const BinaryThreshold t = fold_batchnorm_sign(gamma, beta, mean, var, eps, k);
    for (std::int64_t p = 0; p <= k; ++p)
      ASSERT_EQ(t.fire(p), batchnorm(double(2 * p - k), gamma, beta, mean, var, eps) >= 0)
          << "trial " << trial << " k=" << k << " p=" << p;
  }
}

// xnor_popcount against a bit-by-bit count of agreeing signs.
TEST(BinaryThreshold, XnorPopcountCountsAgreeingBits) {
  std::mt19937_64 rng(6);
  for (std::int64_t k : {1, 63, 64, 65, 200}) {
    std::vector<std::uint64_t> a(4), w(4);
    for (auto& x : a) x = rng();
    for (auto& x : w) x = rng();
    std::int64_t want = 0;
    for (std::int64_t i = 0; i < k; ++i) want += ((a[std::size_t(i / 64)] >> (i % 64)) & 1) == ((w[std::size_t(i / 64)] >> (i % 64)) & 1);
    EXPECT_EQ(xnor_popcount(a, w, k), want) << k;
  }
}
