// SCALE-Sim topology files: what the parser reads (shapes from SCALE-Sim's own formula, worked by
// hand), every kind of bad input as one error naming the file, line and column, and a topology
// layer costed exactly as the executor costs the same layer of an inference run.
#include <gtest/gtest.h>

#include <string>

#include "bitsim/nn/cost.hpp"
#include "bitsim/nn/experiment.hpp"
#include "bitsim/nn/topology.hpp"
#include "bitsim/nn/trainer.hpp"
#include "temp_dir.hpp"

using namespace bitsim::nn;

namespace {

const char* kConvHeader = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";

// The error parse_topology throws for `text`, or "" when it parses.
std::string error_of(const std::string& text) {
  try {
    parse_topology(text, "t.csv");
  } catch (const TopologyError& e) {
    return e.what();
  }
  return "";
}

// The same GEMM costed the same way, and the same layer line (its GEMM and the requantizer).
void same(const bitsim::costmodel::GemmCost& a, const bitsim::costmodel::GemmCost& b, const bitsim::costmodel::CostLine& la,
        const bitsim::costmodel::CostLine& lb) {
  EXPECT_EQ(a.work.shape.m, b.work.shape.m);
  EXPECT_EQ(a.work.shape.k, b.work.shape.k);
  EXPECT_EQ(a.work.shape.n, b.work.shape.n);
  EXPECT_EQ(a.work.conv.has_value(), b.work.conv.has_value());
  EXPECT_EQ(a.work.a, b.work.a);
  EXPECT_EQ(a.work.w, b.work.w);
  EXPECT_EQ(a.work.acc, b.work.acc);
  EXPECT_EQ(a.mapping, b.mapping);
  EXPECT_EQ(a.stats.cycles, b.stats.cycles);
  EXPECT_EQ(a.stats.dram, b.stats.dram);
  EXPECT_EQ(a.stats.buf_a, b.stats.buf_a);
  EXPECT_EQ(a.stats.buf_w, b.stats.buf_w);
  EXPECT_EQ(a.stats.buf_o, b.stats.buf_o);
  EXPECT_EQ(a.total.energy_pj, b.total.energy_pj);
  // The layer's line: its GEMM and the requantizer beside the array.
  EXPECT_EQ(la.macs, lb.macs);
  EXPECT_EQ(la.cycles, lb.cycles);
  EXPECT_EQ(la.dram_bytes, lb.dram_bytes);
  EXPECT_EQ(la.energy_pj, lb.energy_pj);
  EXPECT_GT(la.energy_pj.count("requantizer: Q31 multiplier"), 0u);
}

}  // namespace

// SCALE-Sim's ResNet-18 file as its repository writes it: a header with a trailing comma and
// spaces, rows with a trailing comma, the last row without a newline. OFMAP = ceil((IFMAP -
// filter + stride) / stride) (topology_utils.py): Conv1 ceil(219 / 2) = 110, Conv3_s ceil(57 / 2)
// = 29 (SCALE-Sim's Resnet50.csv notes 110 x 110 for the same Conv1), Conv2 (56 - 3 + 1) / 1 = 54.
TEST(Topology, ReadsConvolutionsAsScaleSimDoes) {
  const Topology t = parse_topology(std::string(kConvHeader) +
                                        "Conv1,224,224,7,7,3,64,2,\n"
                                        "Conv3_s,56,56,1,1,64,128,2,\n"
                                        "Conv2,56,56,3,3,64,64,1,\n"
                                        "FC,1,1,1,1,512,1000,1,",
                                    "r.csv");
  ASSERT_EQ(t.kind, TopologyKind::Conv);
  ASSERT_EQ(t.layers.size(), 4u);
  const TopologyLayer& c1 = t.layers[0];
  EXPECT_EQ(c1.name, "Conv1");
  EXPECT_EQ(c1.line, 2);
  EXPECT_TRUE(c1.is_conv);
  EXPECT_FALSE(c1.depthwise);
  EXPECT_EQ(c1.ifmap_h, 224);
  EXPECT_EQ(c1.conv.out_height(), 110);
  EXPECT_EQ(c1.conv.out_width(), 110);
  EXPECT_EQ(c1.conv.padding, 0);
  EXPECT_EQ(c1.conv.height, 225);  // the last window's row past the IFMAP
  EXPECT_EQ(c1.gemm.m, 110 * 110);
  EXPECT_EQ(c1.gemm.k, 7 * 7 * 3);
  EXPECT_EQ(c1.gemm.n, 64);
  EXPECT_EQ(t.layers[1].gemm.m, 29 * 29);
  EXPECT_EQ(t.layers[2].gemm.m, 54 * 54);
  EXPECT_EQ(t.layers[2].conv.height, 56);
  EXPECT_EQ(t.layers[3].gemm.m, 1);
  EXPECT_EQ(t.layers[3].gemm.k, 512);
  EXPECT_EQ(t.macs(), 110LL * 110 * 147 * 64 + 29LL * 29 * 64 * 128 + 54LL * 54 * 9 * 64 * 64 + 512LL * 1000);
}

// Spellings and line endings of SCALE-Sim's other files: a byte order mark, CRLF, blank lines,
// lower-case names, a header without the trailing comma, rows padded with spaces, and the
// nine-column form with stride height and width.
TEST(Topology, AcceptsScaleSimsOtherSpellings) {
  const Topology a = parse_topology(
      "\xEF\xBB\xBFLayer name,Ifmap height,ifmap width,filter height,filter width,channels,num filters,strides\r\n"
      "\r\n"
      "Conv1,  224, 224,    3, 3,      3,      32,     2,\r\n",
      "m.csv");
  ASSERT_EQ(a.layers.size(), 1u);
  EXPECT_EQ(a.layers[0].gemm.m, 112 * 112);  // ceil((224 - 3 + 2) / 2)
  const Topology b = parse_topology(
      "Layer name,IFMAP height,IFMAP width,Filter height,Filter width,Channels,Num filter,Stride height,Stride width,\n"
      "c,9,9,3,3,2,4,2,2,\n",
      "w.csv");
  EXPECT_EQ(b.layers[0].conv.stride, 2);
  EXPECT_EQ(b.layers[0].gemm.m, 16);
}

// A name containing "DP" is depthwise (scalesim/topology_utils.py, load_arrays_conv): Channels
// convolutions of one channel each, with Num Filter filters. 3x3 on 114 -> 112, 32 channels.
TEST(Topology, DepthwiseLayersRepeatOnceForEachChannel) {
  const Topology t = parse_topology(std::string(kConvHeader) + "B1_DP,114,114,3,3,32,1,1,\nConv2,114,114,3,3,32,1,1,\n", "d.csv");
  const TopologyLayer& dw = t.layers[0];
  EXPECT_TRUE(dw.depthwise);
  EXPECT_EQ(dw.repeat, 32);
  EXPECT_EQ(dw.conv.in_channels, 1);
  EXPECT_EQ(dw.gemm.k, 9);
  EXPECT_EQ(dw.gemm.n, 1);
  EXPECT_EQ(dw.macs(), 112LL * 112 * 9 * 32);
  // Without "DP" the same numbers are one convolution over 32 channels with one filter.
  EXPECT_FALSE(t.layers[1].depthwise);
  EXPECT_EQ(t.layers[1].gemm.k, 9 * 32);
  EXPECT_EQ(t.layers[1].macs(), dw.macs());
}

// GEMM files: SCALE-Sim's load_arrays_gemm takes M x K inputs against N filters of K: C[M x N].
TEST(Topology, ReadsGemmsAsMnk) {
  const Topology t = parse_topology("Layer,M,N,K,\r\nQKT,1024,1024,64,\r\nLinear1,1024,4800,1600,", "g.csv");
  ASSERT_EQ(t.kind, TopologyKind::Gemm);
  ASSERT_EQ(t.layers.size(), 2u);
  EXPECT_FALSE(t.layers[1].is_conv);
  EXPECT_EQ(t.layers[1].gemm.m, 1024);
  EXPECT_EQ(t.layers[1].gemm.n, 4800);
  EXPECT_EQ(t.layers[1].gemm.k, 1600);
  const Topology u = parse_topology("Layer Name, M, N, K, \nTest 1, 128, 64, 256,", "g.csv");
  EXPECT_EQ(u.layers[0].name, "Test 1");
}

TEST(Topology, BadInputNamesFileLineAndColumn) {
  const std::string h = kConvHeader;
  struct Case {
    std::string text, want;
  };
  for (const Case& c : std::vector<Case>{
           {"", "t.csv:1: empty first line"},
           {"Layer name\tIFMAP Height\tIFMAP Width\n", "t.csv:1:2 (IFMAP Height): the header has 1 columns"},
           {"Layer name, IFMAP Width, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n",
            "t.csv:1:2 (IFMAP Height): header column 2 is 'IFMAP Width'"},
           {"Layer, M, K, N,\n", "t.csv:1:3 (N): header column 3 is 'K'"},
           {h, "t.csv:2: no layers after the header"},
           {h + "c,9,9,3,3,x,4,1,\n", "t.csv:2:6 (Channels): 'x'; expected a positive integer"},
           {h + "c,9,9,3,3,2,0,1,\n", "t.csv:2:7 (Num Filter): '0'"},
           {h + "c,9,9,3,3,2,-4,1,\n", "t.csv:2:7 (Num Filter): '-4'"},
           {h + "c,9,9,3,3,2,4,1.5,\n", "t.csv:2:8 (Strides): '1.5'"},
           {h + "c,9,9,3,3,2,4,,\n", "t.csv:2:8 (Strides): ''"},
           {h + "c,99999999,9,3,3,2,4,1,\n", "t.csv:2:2 (IFMAP Height): '99999999'; expected a positive integer up to 16777216"},
           {h + "c,9,9,3,3,2,4,\n", "t.csv:2:8 (Strides): 7 fields; expected 8"},
           {h + "c,9,9,3,3,2,4,1,5,\n", "t.csv:2:9: 9 fields; expected 8"},
           {h + "\n\nc,9,9,3,3,2,4,1,\n,9,9,3,3,2,4,1,\n", "t.csv:5:1 (Layer name): empty layer name"},
           {h + "c,9,9,11,3,2,4,1,\n", "t.csv:2:4 (Filter Height): filter height 11 is larger than the IFMAP height 9"},
           {"Layer name,IFMAP height,IFMAP width,Filter height,Filter width,Channels,Num filter,Stride height,Stride width,\n"
            "c,9,9,3,3,2,4,2,1,\n",
            "t.csv:2:9 (Stride width): stride height 2 and width 1 differ"},
           {"Layer,M,N,K,\ng,4096,4096,4096,\nh,16777216,16777216,16,\n", "t.csv:3: layer 'h' has 4.504e+15 MACs"},
           {"Layer,M,N,K,\ng,1,2,\n", "t.csv:2:4 (K): 3 fields; expected 4"},
       }) {
    const std::string got = error_of(c.text);
    EXPECT_NE(got.find(c.want), std::string::npos) << "input:\n" << c.text << "\ngot: " << got;
    EXPECT_EQ(got.find('\n'), std::string::npos) << got;
  }
}

TEST(Topology, UnreadableFileIsOneError) {
  EXPECT_THROW(load_topology("/nonexistent/x.csv"), TopologyError);
}

// The same convolution costed twice through the one pipeline: as the executor records it when it
// runs a batch of an inference pass (record_training_step's forward GEMMs through
// inference_workload, as `bitsim infer` costs them), and from a topology file row with the same
// shape (28x28 input, 4x4 filter, stride 2, no padding: 13x13 outputs by either formula, as the
// stride divides 28 - 4). The fully connected layer after it as a GEMM row (M = 1 image, N = 10,
// K = 4 x 13 x 13). Every count and energy is equal.
TEST(Topology, LayerCostsWhatTheExecutorCostsForInference) {
  test::TempDir dir;
  const Experiment x = Experiment::load(dir.write("x.toml", R"(name = "tiny"
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 16
[model]
layers = [
  { type = "conv2d", out = 4, kernel = 4, stride = 2, padding = 0 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out = 10 },
]
[train]
batch = 8
[numerics]
weights = "fixed<8,6>"
activations = "fixed<8,4>"
errors = "fixed<16,8>"
accumulator = "int<32>"
[hardware]
array = "8x8"
dataflow = "ws"
buffer_kib = 2
dram_bytes_per_cycle = 4
)"));
  std::vector<GemmRecord> forward;
  for (const GemmRecord& g : record_training_step(x, load_split(x, true)))
    if (g.phase == Phase::Forward) forward.push_back(g);
  ASSERT_EQ(forward.size(), 2u);
  const std::int64_t batch = x.batch;
  const bitsim::costmodel::RunCost executor = bitsim::costmodel::evaluate(x.hardware, inference_workload(x, forward, batch, batch), 1);

  const Topology conv = parse_topology(std::string(kConvHeader) + "conv1,28,28,4,4,1,4,2,\n", "conv.csv");
  const Topology fc = parse_topology("Layer,M,N,K,\nfc1,1,10,676,\n", "fc.csv");
  const bitsim::costmodel::RunCost from_conv = bitsim::costmodel::evaluate(x.hardware, topology_workload(x, conv, batch), 1);
  const bitsim::costmodel::RunCost from_fc = bitsim::costmodel::evaluate(x.hardware, topology_workload(x, fc, batch), 1);

  ASSERT_EQ(executor.gemms.size(), 2u);
  ASSERT_TRUE(executor.gemms[0].work.conv.has_value());
  EXPECT_EQ(executor.gemms[0].work.shape.m, batch * 13 * 13);
  same(executor.gemms[0], from_conv.gemms.at(0), executor.by_layer.at(0).second, from_conv.by_layer.at(0).second);
  same(executor.gemms[1], from_fc.gemms.at(0), executor.by_layer.at(1).second, from_fc.by_layer.at(0).second);
}

// A depthwise convolution in the executor (groups = channels) is costed as SCALE-Sim reads a "DP"
// row: one single-channel convolution per channel, each its own GEMM on the array (here on an
// output-stationary array with overlapped tiles).
TEST(Topology, DepthwiseLayerCostsWhatTheExecutorsDepthwiseConvolutionCosts) {
  test::TempDir dir;
  const Experiment x = Experiment::load(dir.write("x.toml", R"(name = "dw"
[data]
dataset = "synthetic"
synthetic_train = 64
synthetic_test = 16
[model]
layers = [
  { type = "conv2d", out = 6, kernel = 1, bias = false },
  { type = "conv2d", out = 6, kernel = 3, groups = 6, bias = false },
  { type = "flatten" },
  { type = "linear", out = 10 },
]
[train]
batch = 4
[numerics]
weights = "fixed<8,6>"
activations = "fixed<8,4>"
errors = "fixed<16,8>"
accumulator = "int<32>"
[hardware]
array = "8x8"
dataflow = "os"
overlap = true
buffer_kib = 2
dram_bytes_per_cycle = 4
)"));
  ASSERT_TRUE(x.hardware.array.overlap);
  std::vector<GemmRecord> forward;
  for (const GemmRecord& g : record_training_step(x, load_split(x, true)))
    if (g.phase == Phase::Forward) forward.push_back(g);
  ASSERT_EQ(forward.size(), 3u);  // one record for the six groups
  EXPECT_EQ(forward[1].groups, 6);
  EXPECT_EQ(forward[1].k, 9);
  EXPECT_EQ(forward[1].n, 1);
  const std::int64_t batch = x.batch;
  const bitsim::costmodel::RunCost executor = bitsim::costmodel::evaluate(x.hardware, inference_workload(x, forward, batch, batch), 1);
  const Topology t = parse_topology(std::string(kConvHeader) + "conv1,28,28,1,1,1,6,1,\nB1_DP,28,28,3,3,6,1,1,\n", "dw.csv");
  const bitsim::costmodel::RunCost from_topology = bitsim::costmodel::evaluate(x.hardware, topology_workload(x, t, batch), 1);
  ASSERT_EQ(executor.gemms.size(), 3u);
  EXPECT_EQ(executor.gemms[1].work.repeat, 6);
  EXPECT_EQ(executor.gemms[1].work.shape.m, batch * 26 * 26);
  for (int i = 0; i < 2; ++i)
    same(executor.gemms[std::size_t(i)], from_topology.gemms.at(std::size_t(i)), executor.by_layer.at(std::size_t(i)).second,
         from_topology.by_layer.at(std::size_t(i)).second);
  // Six times one channel's MACs.
  EXPECT_EQ(executor.by_layer.at(1).second.macs, 6.0 * batch * 26 * 26 * 9);
}
