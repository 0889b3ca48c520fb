// The reference GEMM: one arith::Accumulator per output, in k order.
#include "bitsim/sim/gemm_reference.hpp"

#include "bitsim/arith/accumulator.hpp"

namespace bitsim::sim {

GemmResult gemm_reference(const ArrayConfig& cfg, const GemmOperands& ops) {
  const GemmShape& s = ops.shape;
  GemmResult r;
  r.c.resize(std::size_t(s.m * s.n));
  r.status.resize(r.c.size());
  for (std::int64_t m = 0; m < s.m; ++m)
    for (std::int64_t n = 0; n < s.n; ++n) {
      arith::Accumulator acc(cfg.acc, cfg.acc_spec, arith::SrStream{cfg.seed, cfg.stream_base + std::uint64_t(m * s.n + n)});
      acc.reset();
      for (std::int64_t k = 0; k < s.k; ++k)
        acc.mac(cfg.a, ops.a[std::size_t(m * s.k + k)], cfg.w, ops.w[std::size_t(k * s.n + n)]);
      r.c[std::size_t(m * s.n + n)] = acc.code();
      r.status[std::size_t(m * s.n + n)] = acc.status();
    }
  r.stats.macs = s.m * s.k * s.n;
  return r;
}

}  // namespace bitsim::sim
