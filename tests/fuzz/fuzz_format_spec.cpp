// Fuzzes arith's spec-string parsers: Format::parse, BlockFormat::parse and the rounding and
// overflow names. A bad spec must end in FormatError; a good one must survive its own spec().
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bitsim/arith/block.hpp"
#include "bitsim/arith/format.hpp"
#include "bitsim/arith/quantize.hpp"
#include "bitsim/arith/rounding.hpp"
#include "fuzz_check.hpp"

using namespace bitsim::arith;

namespace {

void scalar_format(std::string_view s) {
  Format f;
  try {
    f = Format::parse(s);
  } catch (const FormatError&) {
    return;
  }
  const std::string spec = f.spec();
  FUZZ_CHECK(Format::parse(spec) == f, "'%s' -> '%s' parses to another format", std::string(s).c_str(), spec.c_str());
  FUZZ_CHECK(f.width() >= 1 && f.width() <= 128, "'%s' has width %d", spec.c_str(), f.width());
  // The extreme codes must decode and quantize back to themselves: parse may only accept formats
  // the rest of arith can hold.
  const RoundSpec rs{Rounding::NearestEven, default_overflow(f)};
  for (const u128 code : {max_code(f), min_code(f), min_positive_code(f)}) {
    FUZZ_CHECK((code & ~f.code_mask()) == 0, "'%s': extreme code wider than the format", spec.c_str());
    const Exact v = decode(f, code);
    FUZZ_CHECK(quantize(f, v, rs).code == code, "'%s': an extreme code does not quantize to itself", spec.c_str());
  }
}

void block_format(std::string_view s) {
  BlockFormat b;
  try {
    b = BlockFormat::parse(s);
  } catch (const FormatError&) {
    return;
  }
  b.validate();  // parse() only makes combinations validate() accepts; a throw here is a finding
  const std::string spec = b.spec();
  FUZZ_CHECK(BlockFormat::parse(spec) == b, "'%s' -> '%s' parses to another block format", std::string(s).c_str(),
             spec.c_str());
}

void mode_names(std::string_view s) {
  try {
    const Rounding r = parse_rounding(s);
    FUZZ_CHECK(parse_rounding(to_string(r)) == r, "rounding '%s' does not survive to_string", std::string(s).c_str());
  } catch (const FormatError&) {
  }
  try {
    const Overflow o = parse_overflow(s);
    FUZZ_CHECK(parse_overflow(to_string(o)) == o, "overflow '%s' does not survive to_string", std::string(s).c_str());
  } catch (const FormatError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  scalar_format(s);
  block_format(s);
  mode_names(s);
  return 0;
}
