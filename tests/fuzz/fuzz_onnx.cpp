// Fuzzes nn::load_onnx, the ONNX model reader (protobuf through libonnx, then the conversion of
// the graph to executor layers), and nn::load_onnx_weights on the network those layers build.
// Rejection must be one line of OnnxError naming the file. An accepted model has layers whose
// branches and residuals read earlier outputs, parameters of the sizes its layers take, and either
// builds a network that takes its weights or fails with one line naming the layer that does not fit.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "bitsim/nn/model.hpp"
#include "bitsim/nn/onnx.hpp"
#include "bitsim/nn/trainer.hpp"
#include "fuzz_check.hpp"

using namespace bitsim::nn;

namespace {
const std::string kScratch = fuzz_scratch_path("model.onnx");
const bool kVerbose = std::getenv("BITSIM_FUZZ_VERBOSE") != nullptr;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::ofstream(kScratch, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  OnnxModel m;
  try {
    m = load_onnx(kScratch);
  } catch (const OnnxError& e) {
    const std::string what = e.what();
    FUZZ_CHECK(what.find('\n') == std::string::npos, "a multi-line error: %s", what.c_str());
    FUZZ_CHECK(what.rfind(kScratch + ":", 0) == 0, "an error not naming the file: %s", what.c_str());
    if (kVerbose) std::fprintf(stderr, "OnnxError: %s\n", what.c_str());
    return 0;
  }
  FUZZ_CHECK(!m.layers.empty(), "accepted with no layers");
  FUZZ_CHECK(m.params.size() == m.layers.size() && m.buffers.size() == m.layers.size(), "parameters per layer");
  FUZZ_CHECK(m.opset >= kMinOnnxOpset && m.opset <= kMaxOnnxOpset, "opset %lld", static_cast<long long>(m.opset));
  FUZZ_CHECK(m.input.size() == 3 || m.input.size() == 1, "input rank");
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const LayerSpec& s = m.layers[i];
    FUZZ_CHECK(s.input == -1 || (s.input >= 0 && s.input < int(i)), "layer %zu reads %d", i, s.input);
    if (s.type == LayerType::Residual) FUZZ_CHECK(s.from >= 0 && s.from < int(i), "layer %zu adds %d", i, s.from);
    const bool gemm = s.type == LayerType::Conv2d || s.type == LayerType::Linear;
    const std::size_t want = gemm ? 1 + s.bias : s.type == LayerType::BatchNorm ? 2 : 0;
    FUZZ_CHECK(m.params[i].size() == want, "layer %zu has %zu parameter tensors", i, m.params[i].size());
    if (s.type == LayerType::Conv2d) FUZZ_CHECK(s.groups >= 1 && s.out % s.groups == 0 && s.kernel >= 1, "conv %zu", i);
  }
  // Small models only: the network is built at batch 1 and must not exhaust memory.
  std::int64_t elements = 1;
  for (std::int64_t d : m.input) elements *= d;
  if (elements > 1 << 16) return 0;
  try {
    OnnxNetwork o = build_onnx_network(m, 1);
    load_onnx_weights(m, o.net, o.input);
  } catch (const OnnxError& e) {  // shapes that do not fit, named
    FUZZ_CHECK(std::string(e.what()).find('\n') == std::string::npos, "a multi-line error: %s", e.what());
  }
  return 0;
}
