// The reference GEMM: one arith::Accumulator per output, in k order.
#include "bitsim/sim/gemm_reference.hpp"

#include <stdexcept>

#include "bitsim/arith/accumulator.hpp"

namespace bitsim::sim {

GemmOperands im2col(const ConvOperands& ops) {
  const ConvShape& cv = ops.shape;
  const GemmShape g = cv.gemm();
  if (ops.ifmap.size() != std::size_t(cv.batch * cv.in_channels * cv.height * cv.width) ||
      ops.filter.size() != std::size_t(g.k * g.n))
    throw std::invalid_argument("convolution operands do not match the shape");
  GemmOperands out{g, std::vector<arith::u128>(std::size_t(g.m * g.k), 0), ops.filter};
  const std::int64_t OH = cv.out_height(), OW = cv.out_width();
  for (std::int64_t m = 0; m < g.m; ++m) {
    const std::int64_t b = m / (OH * OW), oy = (m / OW) % OH, ox = m % OW;
    for (std::int64_t k = 0; k < g.k; ++k) {
      const std::int64_t c = k / (cv.kernel_h * cv.kernel_w), ry = (k / cv.kernel_w) % cv.kernel_h, sx = k % cv.kernel_w;
      const std::int64_t y = oy * cv.stride + ry - cv.padding, x = ox * cv.stride + sx - cv.padding;
      if (y >= 0 && y < cv.height && x >= 0 && x < cv.width)
        out.a[std::size_t(m * g.k + k)] = ops.ifmap[std::size_t(((b * cv.in_channels + c) * cv.height + y) * cv.width + x)];
    }
  }
  return out;
}

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
