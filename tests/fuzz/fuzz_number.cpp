// Fuzzes arith::parse_exact (decimal and C99 hex floats, read exactly) and the quantizer behind it:
// a bad number must end in FormatError, a good one must round the same every time, land on a code
// of the format, and, read into fp64 or fp32, agree bit for bit with the C library's strtod/strtof.
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "bitsim/arith/format.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/rounding.hpp"
#include "fuzz_check.hpp"

using namespace bitsim::arith;

namespace {

const Format kFp64 = Format::parse("fp64");
const Format kFp32 = Format::parse("fp32");

// A spread of formats: IEEE, OCP, no-zero E8M0, narrow and wide fixed point, negative fraction bits.
const Format kFormats[] = {
    kFp64,
    kFp32,
    Format::parse("fp16"),
    Format::parse("bf16"),
    Format::parse("fp8e4m3"),
    Format::parse("fp8e5m2"),
    Format::parse("fp4e2m1"),
    Format::parse("e8m0"),
    Format::parse("float<4,3,ftz>"),
    Format::parse("fixed<8,4>"),
    Format::parse("ufixed<16,-2>"),
    Format::parse("int<32>"),
    Format::parse("fixed<64,60>"),
    Format::parse("fixed<128,64>"),
};

const Rounding kRoundings[] = {Rounding::NearestEven, Rounding::NearestAway, Rounding::NearestZero,
                               Rounding::NearestUp,   Rounding::NearestDown, Rounding::TowardZero,
                               Rounding::Down,        Rounding::Up,          Rounding::Odd,
                               Rounding::Stochastic};

std::uint64_t f64_bits(double d) {
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

std::uint32_t f32_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

void quantize_all(const Exact& x, const std::string& text) {
  for (const Format& f : kFormats) {
    for (const Rounding r : kRoundings) {
      const RoundSpec rs{r, default_overflow(f)};
      const Quantized a = quantize(f, x, rs, 0x9e3779b9u);
      const Quantized b = quantize(f, x, rs, 0x9e3779b9u);
      FUZZ_CHECK(a.code == b.code && a.status == b.status, "'%s' to %s rounds two ways", text.c_str(), f.spec().c_str());
      FUZZ_CHECK((a.code & ~f.code_mask()) == 0, "'%s' to %s: code wider than the format", text.c_str(), f.spec().c_str());
      // A code's own value is representable: every rounding must give the code back, exactly.
      const Exact v = decode(f, a.code);
      if (v.is_nan()) continue;
      const Quantized c = quantize(f, v, rs, 0x12345678u);
      FUZZ_CHECK(c.code == a.code, "'%s' to %s: the result's value does not quantize to itself", text.c_str(),
                 f.spec().c_str());
      FUZZ_CHECK(c.status == kExact, "'%s' to %s: the result's value quantizes with status %s", text.c_str(),
                 f.spec().c_str(), status_string(c.status).c_str());
    }
  }
  // The two fp conversions arith offers must agree with its own quantizer.
  const RoundSpec ne{Rounding::NearestEven, Overflow::Ieee};
  const std::uint64_t q64 = std::uint64_t(quantize(kFp64, x, ne).code);
  const double d = x.to_double();
  FUZZ_CHECK(std::isnan(d) ? x.is_nan() : f64_bits(d) == q64, "'%s': to_double and quantize(fp64) differ", text.c_str());
  const std::uint32_t q32 = std::uint32_t(quantize(kFp32, x, ne).code);
  const float f = to_f32(x);
  FUZZ_CHECK(std::isnan(f) ? x.is_nan() : f32_bits(f) == q32, "'%s': to_f32 and quantize(fp32) differ", text.c_str());
}

// The C library reads the same syntax (decimal, hex float, inf, nan); where it reads the whole
// string without a range error its correctly rounded result is an independent reference.
void compare_with_libc(const Exact& x, const std::string& text) {
  if (text.size() > 64 || text.find('\0') != std::string::npos) return;
  const RoundSpec ne{Rounding::NearestEven, Overflow::Ieee};
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(text.c_str(), &end);
  if (end == text.c_str() + text.size() && errno == 0) {
    const std::uint64_t q = std::uint64_t(quantize(kFp64, x, ne).code);
    if (std::isnan(d))
      FUZZ_CHECK(x.is_nan(), "'%s': strtod reads nan, parse_exact does not", text.c_str());
    else
      FUZZ_CHECK(f64_bits(d) == q, "'%s': strtod gives 0x%016llx, quantize(fp64) 0x%016llx", text.c_str(),
                 (unsigned long long)f64_bits(d), (unsigned long long)q);
  }
  end = nullptr;
  errno = 0;
  const float f = std::strtof(text.c_str(), &end);
  if (end == text.c_str() + text.size() && errno == 0) {
    const std::uint32_t q = std::uint32_t(quantize(kFp32, x, ne).code);
    if (std::isnan(f))
      FUZZ_CHECK(x.is_nan(), "'%s': strtof reads nan, parse_exact does not", text.c_str());
    else
      FUZZ_CHECK(f32_bits(f) == q, "'%s': strtof gives 0x%08x, quantize(fp32) 0x%08x", text.c_str(), f32_bits(f), q);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Exact x;
  try {
    x = parse_exact(text);
  } catch (const FormatError&) {
    return 0;
  }
  quantize_all(x, text);
  compare_with_libc(x, text);
  return 0;
}
