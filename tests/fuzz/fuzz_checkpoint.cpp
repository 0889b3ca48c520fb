// Fuzzes the checkpoint reader nn::load_checkpoint on a small fixed network. The first byte picks
// how the input is written: bit 0 re-seals it with a valid CRC-32 (so mutations reach the header
// and payload parser instead of stopping at the checksum), bit 1 loads with the optimizer's state
// (resume) rather than the weights only (infer). Rejection must be CheckpointError; anything else
// (a crash, another exception, a network left half-changed by a refused file) is a finding.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bitsim/nn/trainer.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace bitsim::nn;

const std::string kScratch = fuzz_scratch_path("checkpoint");
const std::string kExperiment = fuzz_scratch_path("checkpoint-experiment.toml");


// The network the corpus checkpoints were written for (tests/fuzz/corpus/checkpoint/README.md):
// small enough that a whole checkpoint fits the fuzzer's 4 KiB inputs.
const Experiment& experiment() {
  static const Experiment x = [] {
    std::ofstream(kExperiment) << R"(name = "fuzz"
[data]
dataset = "synthetic"
synthetic_train = 16
synthetic_test = 16
[model]
layers = [{ type = "avgpool", kernel = 14 }, { type = "flatten" }, { type = "batchnorm" }, { type = "linear", out = 10 }]
[train]
batch = 4
[numerics]
master = "fixed<16,14>"
lazy_accumulator = "fixed<16,22>"
)";
    Experiment e = Experiment::load(kExperiment);
    std::filesystem::remove(kExperiment);
    return e;
  }();
  return x;
}

std::vector<float> weights(Network& net) {
  std::vector<float> all;
  for (Param* p : net.params()) all.insert(all.end(), p->value.v.begin(), p->value.v.end());
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned mode = data[0];
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((mode & 1) && bytes.size() >= 4) {
    const std::uint32_t crc = std::uint32_t(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size() - 4)));
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  std::ofstream(kScratch, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  const Experiment& x = experiment();
  Network net = build_network(x, {x.batch, 1, 28, 28});
  Optimizer optim = make_optimizer(x);
  const std::vector<float> before = weights(net);
  try {
    load_checkpoint(kScratch, net, (mode & 2) ? &optim : nullptr);
  } catch (const CheckpointError&) {
    FUZZ_CHECK(weights(net) == before, "a refused checkpoint changed the network");
  }
  // libFuzzer may exit without running destructors: nothing is left in /dev/shm between inputs.
  std::filesystem::remove(kScratch);
  return 0;
}
