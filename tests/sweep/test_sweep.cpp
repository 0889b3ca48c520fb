// Sweep files expand to the points they describe, bad ones are refused naming the key, axis and
// value, and Pareto fronts equal an independent sort-and-scan front on random sets with ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "../nn/temp_dir.hpp"
#include "bitsim/sweep/plan.hpp"
#include "bitsim/sweep/results.hpp"

namespace bitsim::sweep {
namespace {

using nn::test::TempDir;

// A small experiment on synthetic data; sweeps in these tests point at it.
constexpr const char* kExperiment = R"(name = "tiny"
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 32
[model]
layers = [ { type = "flatten" }, { type = "linear", out = 10 } ]
[train]
epochs = 1
batch = 32
[numerics]
weights = "fixed<8,6>"
[hardware]
array = "8x8"
)";

struct Files {
  TempDir dir;
  std::string sweep(const std::string& text) {
    dir.write("tiny.toml", kExperiment);
    return dir.write("sweep.toml", text);
  }
};

std::string load_error(Files& f, const std::string& text, bool validate = false) {
  try {
    const Plan p = Plan::load(f.sweep(text));
    if (validate) p.validate();
  } catch (const SweepError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  return "no error";
}

TEST(SweepPlan, GridOfAxesAndZipsWithSeedsInnermost) {
  Files f;
  const Plan p = Plan::load(f.sweep(R"(experiment = "tiny.toml"
seeds = [5, 6]
[set]
"train.epochs" = 2
[set.numerics]
errors = { format = "dfx<8>", rounding = "stochastic" }
[[axis]]
key = "numerics.weights"
values = ["fixed<4,3>", "dfx<6,channel>", "dfx<8,channel>"]
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16"]
[[zip]]
keys = ["numerics.activations", "hardware.node_nm"]
values = [["dfx<6>", 45], ["dfx<8>", 7]]
)"));
  EXPECT_EQ(p.experiment, (f.dir.path / "tiny.toml").string());
  EXPECT_EQ(p.mode, Mode::Train);
  ASSERT_EQ(p.dims.size(), 3u);
  EXPECT_EQ(p.configs, 3u * 2 * 2);
  ASSERT_EQ(p.points.size(), 3u * 2 * 2 * 2);
  EXPECT_EQ(p.axis_keys(), (std::vector<std::string>{"numerics.weights", "hardware.array", "numerics.activations", "hardware.node_nm"}));
  // The first axis varies slowest, seeds fastest.
  const Point& q = p.points[1 * 8 + 0 * 4 + 1 * 2 + 1];  // weights #1, array #0, zip #1, seed #1
  EXPECT_EQ(q.id, "0011");
  EXPECT_EQ(q.config, 5u);
  EXPECT_EQ(q.seed, 6u);
  EXPECT_EQ(q.label, "weights=dfx<6,channel> array=8x8 activations=dfx<8> node_nm=7");
  // [set] in key order, then the dimensions in order, then the seed.
  EXPECT_EQ(q.overrides(), (std::vector<std::string>{R"(numerics.errors={ format = "dfx<8>", rounding = "stochastic" })",
                                                     "train.epochs=2",
                                                     R"(numerics.weights="dfx<6,channel>")", R"(hardware.array="8x8")",
                                                     R"(numerics.activations="dfx<8>")", "hardware.node_nm=7", "seed=6"}));
  // Default objectives of a training sweep.
  ASSERT_EQ(p.objectives.size(), 3u);
  EXPECT_EQ(p.objectives[0].spec(), "max:accuracy.test");
  EXPECT_EQ(p.objectives[1].spec(), "min:cost.energy_j");
  EXPECT_EQ(p.objectives[2].spec(), "min:cost.area_mm2");
  p.validate();  // every point loads
}

TEST(SweepPlan, NamedValuesLabelTheirDimension) {
  Files f;
  const Plan p = Plan::load(f.sweep(R"(experiment = "tiny.toml"
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16"]
[[zip]]
names = ["narrow", "wide"]
keys = ["numerics.weights", "numerics.activations"]
values = [["fixed<4,3>", "dfx<4>"], ["fixed<8,6>", "dfx<8>"]]
)"));
  ASSERT_EQ(p.points.size(), 4u);
  EXPECT_EQ(p.points[0].label, "array=8x8 narrow");
  EXPECT_EQ(p.points[3].label, "array=16x16 wide");
  // A name changes the label only: the points compute what they did without it.
  const Plan q = Plan::load(f.sweep(R"(experiment = "tiny.toml"
[[axis]]
key = "hardware.array"
values = ["8x8", "16x16"]
[[zip]]
keys = ["numerics.weights", "numerics.activations"]
values = [["fixed<4,3>", "dfx<4>"], ["fixed<8,6>", "dfx<8>"]]
)"));
  EXPECT_EQ(p.to_json(), q.to_json());
  EXPECT_EQ(q.points[3].label, "array=16x16 weights=fixed<8,6> activations=dfx<8>");

  const std::string head = "experiment = \"tiny.toml\"\n[[axis]]\nkey = \"hardware.array\"\nvalues = [\"8x8\", \"16x16\"]\n";
  EXPECT_NE(load_error(f, head + "names = [\"a\"]\n").find("names: expected one name per value: 1 names for 2 values"), std::string::npos);
  EXPECT_NE(load_error(f, head + "names = [\"a\", \"a\"]\n").find("names: expected distinct names; 'a' appears twice"), std::string::npos);
  EXPECT_NE(load_error(f, head + "names = [\"a\", 2]\n").find("names: expected an array of names"), std::string::npos);
  EXPECT_NE(load_error(f, head + "names = [\"a\", \"\"]\n").find("names: expected an array of names"), std::string::npos);
  EXPECT_NE(load_error(f, head + "names = \"a\"\n").find("names"), std::string::npos);
}

TEST(SweepPlan, ObjectivesAndModes) {
  Files f;
  const Plan c = Plan::load(f.sweep("experiment = \"tiny.toml\"\nmode = \"cost\"\n[pareto]\nobjectives = [\"min:cost.energy\", \"min:cost.edp\"]\n"));
  EXPECT_EQ(c.mode, Mode::Cost);
  ASSERT_EQ(c.points.size(), 1u);
  EXPECT_EQ(c.points[0].label, "base");
  EXPECT_EQ(c.objectives[0].spec(), "min:cost.energy_j");
  EXPECT_EQ(c.objectives[1].spec(), "min:cost.edp_js");
  EXPECT_NE(load_error(f, "experiment = \"tiny.toml\"\nmode = \"cost\"\n[pareto]\nobjectives = [\"max:accuracy.test\", \"min:cost.energy\"]\n")
                .find("bad objective 'max:accuracy.test'"),
            std::string::npos);
  // An infer sweep needs a checkpoint unless its experiment's model.onnx holds the weights.
  EXPECT_NE(load_error(f, "experiment = \"tiny.toml\"\nmode = \"infer\"\n", true)
                .find("checkpoint: expected the checkpoint.bin every point of an infer sweep evaluates"),
            std::string::npos);
  EXPECT_NE(load_error(f, "experiment = \"tiny.toml\"\nmode = \"infer\"\ncheckpoint = \"none.bin\"\n", true).find("none.bin: no such file"),
            std::string::npos);
  EXPECT_NE(load_error(f, "experiment = \"tiny.toml\"\ncheckpoint = \"x.bin\"\n").find("only an infer sweep"), std::string::npos);
}

TEST(SweepPlan, BadFilesNameTheKeyAxisAndValue) {
  Files f;
  const std::string head = "experiment = \"tiny.toml\"\n";
  struct Case {
    std::string text, want;
    bool validate = false;
  };
  const std::vector<Case> cases{
      {"mode = \"train\"\n", "experiment: expected the experiment file"},
      {head + "mdoe = \"cost\"\n", "mdoe: unknown key"},
      {head + "mode = \"fast\"\n", "mode: expected train, infer or cost, got 'fast'"},
      {head + "seeds = [1, 1]\n", "1 appears twice"},
      {head + "seeds = [-1]\n", "seeds: expected non-negative integers"},
      {head + "[[axis]]\nkey = \"hardware.array\"\nvalues = []\n", "values: expected at least one entry"},
      {head + "[[axis]]\nkey = \"hardware.array\"\nvalues = [\"8x8\", \"8x8\"]\n", "'8x8' appears twice"},
      {head + "[[axis]]\nkey = \"hardware.array\"\nvalue = [\"8x8\"]\n", "value: unknown key"},
      {head + "[[axis]]\nkey = \"seed\"\nvalues = [1]\nseeds = [2]\n", "unknown key"},
      {head + "seeds = [2]\n[[axis]]\nkey = \"seed\"\nvalues = [1]\n", "'seed' is already set"},
      {head + "[set]\n\"hardware.array\" = \"8x8\"\n[[axis]]\nkey = \"hardware.array\"\nvalues = [\"4x4\"]\n", "already set"},
      {head + "[[axis]]\nkey = \"a b\"\nvalues = [1]\n", "bad key 'a b'"},
      {head + "[[zip]]\nkeys = [\"hardware.array\", \"hardware.node_nm\"]\nvalues = [[\"8x8\"]]\n", "arrays of 2 values"},
      {head + "[pareto]\nobjectives = [\"max:accuracy.test\"]\n", "at least two objectives"},
      {head + "[pareto]\nobjectives = [\"max:accuracy.test\", \"min:accuracy.test\"]\n", "accuracy.test appears twice"},
      {head + "[pareto]\nobjectives = [\"up:accuracy.test\", \"min:cost.energy\"]\n", "bad objective 'up:accuracy.test'"},
      {"experiment = \"tiny.toml\"\n[set\n", "sweep.toml:2:"},
      // Validation against the experiment: the axis and the value that cause the error are named.
      {head + "[[axis]]\nkey = \"numerics.weights\"\nvalues = [\"fixed<8,6>\", \"fxd<4>\"]\n",
       "axis 'numerics.weights' value 'fxd<4>': ", true},
      {head + "[[axis]]\nkey = \"hardware.arrray\"\nvalues = [\"8x8\"]\n", "axis 'hardware.arrray' value '8x8': ", true},
      {head + "[set]\n\"train.epochs\" = 0\n", "set: ", true},
      {head + "[[zip]]\nkeys = [\"hardware.array\", \"hardware.node_nm\"]\nvalues = [[\"8x8\", 45], [\"8x8\", -3]]\n",
       "zip ['hardware.array', 'hardware.node_nm'] value (\"8x8\", -3): ", true},
  };
  for (const Case& c : cases) {
    const std::string e = load_error(f, c.text, c.validate);
    EXPECT_NE(e.find(c.want), std::string::npos) << "wanted '" << c.want << "' in: " << e << "\nfor:\n" << c.text;
    EXPECT_EQ(e.rfind(f.dir.file("sweep.toml"), 0), 0u) << "the message starts with the sweep file: " << e;
  }
}

TEST(SweepPlan, PointCountIsBounded) {
  Files f;
  std::string text = "experiment = \"tiny.toml\"\n";
  for (int a = 0; a < 3; ++a) {
    text += "[[axis]]\nkey = \"k" + std::to_string(a) + "\"\nvalues = [";
    for (int v = 0; v < 50; ++v) text += (v ? ", " : "") + std::to_string(v);
    text += "]\n";
  }
  EXPECT_NE(load_error(f, text).find("more than 100000 points"), std::string::npos);
}

// The front of (min, min) pairs by sorting on x (then y) and keeping each point whose y is below
// every y before it, or equal to that of an identical point on the front.
std::vector<bool> sort_scan_front(const std::vector<std::vector<double>>& pts) {
  std::vector<std::size_t> order(pts.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return pts[a] < pts[b]; });
  std::vector<bool> in(pts.size(), false);
  double best_y = INFINITY;
  std::vector<double> last;
  for (std::size_t i : order) {
    if (pts[i][1] < best_y || (pts[i] == last)) {
      in[i] = true;
      if (pts[i][1] < best_y) best_y = pts[i][1], last = pts[i];
    }
  }
  return in;
}

TEST(SweepPareto, EqualsASortAndScanFrontOnRandomSetsWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    const int n = 1 + int(rng() % 40), range = 1 + int(rng() % 8);  // small ranges: many ties
    std::vector<std::vector<double>> pts;
    for (int i = 0; i < n; ++i) pts.push_back({double(rng() % range), double(rng() % range)});
    EXPECT_EQ(pareto_front(pts, {false, false}), sort_scan_front(pts)) << "trial " << trial;
    // Maximising an objective is minimising its negation.
    std::vector<std::vector<double>> neg = pts;
    for (auto& p : neg) p[0] = -p[0];
    EXPECT_EQ(pareto_front(neg, {true, false}), sort_scan_front(pts)) << "trial " << trial;
  }
}

TEST(SweepPareto, NonFiniteRowsTakeNoPart) {
  const std::vector<std::vector<double>> pts{{1, 5}, {NAN, 0}, {2, 2}, {3, INFINITY}, {0.5, 9}};
  EXPECT_EQ(pareto_front(pts, {false, false}), (std::vector<bool>{true, false, true, false, true}));
  // Accuracy up, energy down: (0.9, 10) and (0.8, 5) trade; (0.7, 6) is dominated by (0.8, 5).
  EXPECT_EQ(pareto_front({{0.9, 10}, {0.8, 5}, {0.7, 6}}, {true, false}), (std::vector<bool>{true, true, false}));
}

}  // namespace
}  // namespace bitsim::sweep
