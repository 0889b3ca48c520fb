// XNOR-popcount-threshold unit: the fold schedule and handshake are the model's; the popcount and
// threshold semantics are arith's (xnor_popcount, BinaryThreshold), which the reference uses whole.
#include "bitsim/sim/xnor_unit.hpp"

#include <bit>
#include <stdexcept>

namespace bitsim::sim {

namespace {
// Bits [offset, offset + len) of a packed vector, len <= 64.
std::uint64_t bits(const std::vector<std::uint64_t>& v, std::int64_t offset, int len) {
  const std::size_t w = std::size_t(offset / 64);
  const int s = int(offset % 64);
  std::uint64_t x = v[w] >> s;
  if (s && w + 1 < v.size()) x |= v[w + 1] << (64 - s);
  return len == 64 ? x : x & ((std::uint64_t(1) << len) - 1);
}
}  // namespace

void XnorLayer::validate() const {
  if (fan_in < 1 || neurons < 1 || pe < 1 || pe > 128 || simd < 1 || simd > 64)
    throw std::invalid_argument("XNOR layer: fan-in and neurons must be positive, PE 1..128, SIMD 1..64");
  if (weights.size() != std::size_t(neurons) || thresholds.size() != std::size_t(neurons))
    throw std::invalid_argument("XNOR layer: one weight row and one threshold per neuron");
  for (const auto& row : weights)
    if (row.size() < std::size_t((fan_in + 63) / 64)) throw std::invalid_argument("XNOR layer: weight row shorter than K bits");
}

std::vector<bool> xnor_layer_reference(const XnorLayer& layer, const std::vector<std::uint64_t>& input) {
  std::vector<bool> out(std::size_t(layer.neurons));
  for (int n = 0; n < layer.neurons; ++n)
    out[std::size_t(n)] = layer.thresholds[std::size_t(n)].fire(
        arith::xnor_popcount(input, layer.weights[std::size_t(n)], layer.fan_in));
  return out;
}

XnorUnit::XnorUnit(sc_core::sc_module_name name, XnorLayer layer) : sc_core::sc_module(name), layer_(std::move(layer)) {
  layer_.validate();
  buffer_.assign(std::size_t(layer_.synapse_folds()), 0);
  acc_.assign(std::size_t(layer_.pe), 0);
  using SC_CURRENT_USER_MODULE = XnorUnit;
  SC_METHOD(tick);
  sensitive << clk.pos();
  dont_initialize();
  SC_METHOD(ready_logic);
  sensitive << out_full_sig_ << out_ready << first_pass_sig_;
}

void XnorUnit::ready_logic() {
  in_ready.write(first_pass_sig_.read() && !(out_full_sig_.read() && !out_ready.read()));
}

std::uint64_t XnorUnit::weight_chunk(int neuron, std::int64_t sf) const {
  const std::int64_t off = sf * layer_.simd;
  return bits(layer_.weights[std::size_t(neuron)], off, int(std::min<std::int64_t>(layer_.simd, layer_.fan_in - off)));
}

void XnorUnit::tick() {
  if (rst.read()) {
    sf_ = nf_ = 0;
    out_full_ = false;
    for (auto& a : acc_) a = 0;
  } else {
    const bool stalled = out_full_ && !out_ready.read();
    if (out_full_ && out_ready.read()) out_full_ = false;  // the output transferred at this edge
    const bool have_input = nf_ > 0 || in_valid.read();
    if (!stalled && have_input) {
      if (nf_ == 0) buffer_[std::size_t(sf_)] = std::uint64_t(to_u128(in_bits.read()));
      const std::int64_t off = sf_ * layer_.simd;
      const int len = int(std::min<std::int64_t>(layer_.simd, layer_.fan_in - off));
      const std::uint64_t mask = len == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << len) - 1;
      const std::uint64_t chunk = buffer_[std::size_t(sf_)] & mask;
      for (int j = 0; j < layer_.pe; ++j) {
        const int n = int(nf_) * layer_.pe + j;
        if (n >= layer_.neurons) break;
        const std::int64_t next = acc_[std::size_t(j)] + std::popcount(~(chunk ^ weight_chunk(n, sf_)) & mask);
        toggles_ += std::uint64_t(std::popcount(std::uint64_t(next ^ acc_[std::size_t(j)])));
        acc_[std::size_t(j)] = next;
      }
      if (++sf_ == layer_.synapse_folds()) {
        arith::u128 out = 0;
        for (int j = 0; j < layer_.pe; ++j) {
          const int n = int(nf_) * layer_.pe + j;
          if (n < layer_.neurons && layer_.thresholds[std::size_t(n)].fire(acc_[std::size_t(j)])) out |= arith::u128(1) << j;
          acc_[std::size_t(j)] = 0;
        }
        out_bits.write(to_code(out));
        out_full_ = true;
        sf_ = 0;
        if (++nf_ == layer_.neuron_folds()) nf_ = 0;
      }
    }
  }
  out_valid.write(out_full_);
  out_full_sig_.write(out_full_);
  first_pass_sig_.write(nf_ == 0);
}

}  // namespace bitsim::sim
