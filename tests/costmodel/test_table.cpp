// The default table reproduces every published anchor exactly (values typed from Horowitz ISSCC
// 2014, never printed by the code), and malformed tables fail with errors that name the entry.
#include <gtest/gtest.h>

#include <string>

#include "bitsim/costmodel/laws.hpp"
#include "bitsim/costmodel/table.hpp"
#include "bitsim/costmodel/technology.hpp"

using namespace bitsim::costmodel;
using bitsim::arith::Format;

namespace {

const CostModel& model45() {
  static const CostModel m = CostModel::load_default();
  return m;
}

Format F(const char* s) { return Format::parse(s); }

// Expects parse() to throw a TableError whose message contains every `want`.
void expect_table_error(const std::string& json, std::initializer_list<const char*> want) {
  try {
    const CostTable t = CostTable::parse(json, "user.json");
    // Some errors (float anchors below the exponent adder) surface when the laws are built.
    CostModel m(t, NodeScaling::load_default());
    ADD_FAILURE() << "no error for: " << json;
  } catch (const TableError& e) {
    for (const char* w : want) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what() << "\nwanted: " << w;
  }
}

std::string table_with(const std::string& entries) {
  return R"({"name": "t", "source": "test", "node_nm": 28, "vdd_v": 0.9, "entries": [)" + entries + "]}";
}

}  // namespace

// Horowitz, ISSCC 2014, 45 nm 0.9 V: integer add 8/16/32 bit 0.03/0.05/0.1 pJ, 36/67/137 um^2.
TEST(CostTableAnchors, IntegerAddersReproduceHorowitz) {
  const CostModel& m = model45();
  EXPECT_DOUBLE_EQ(m.add(F("int<8>")).energy_pj(), 0.03);
  EXPECT_DOUBLE_EQ(m.add(F("int<16>")).energy_pj(), 0.05);
  EXPECT_DOUBLE_EQ(m.add(F("int<32>")).energy_pj(), 0.1);
  EXPECT_DOUBLE_EQ(*m.add(F("int<8>")).area_um2(), 36);
  EXPECT_DOUBLE_EQ(*m.add(F("int<16>")).area_um2(), 67);
  EXPECT_DOUBLE_EQ(*m.add(F("int<32>")).area_um2(), 137);
}

// Integer multiply 8/32 bit: 0.2/3.1 pJ, 282/3495 um^2. Fixed point costs by word length.
TEST(CostTableAnchors, IntegerMultipliersReproduceHorowitz) {
  const CostModel& m = model45();
  EXPECT_DOUBLE_EQ(m.multiply(F("int<8>"), F("int<8>")).energy_pj(), 0.2);
  EXPECT_DOUBLE_EQ(m.multiply(F("int<32>"), F("int<32>")).energy_pj(), 3.1);
  EXPECT_DOUBLE_EQ(*m.multiply(F("int<8>"), F("int<8>")).area_um2(), 282);
  EXPECT_DOUBLE_EQ(*m.multiply(F("int<32>"), F("int<32>")).area_um2(), 3495);
  EXPECT_DOUBLE_EQ(m.multiply(F("fixed<8,5>"), F("ufixed<8,8>")).energy_pj(), 0.2);
}

// fp16/fp32 add 0.4/0.9 pJ, 1360/4184 um^2; multiply 1.1/3.7 pJ, 1640/7700 um^2. The float law is
// exponent adder + significand datapath, so the anchors come back up to one rounding of the sum.
TEST(CostTableAnchors, FloatUnitsReproduceHorowitz) {
  const CostModel& m = model45();
  EXPECT_NEAR(m.add(F("fp16")).energy_pj(), 0.4, 1e-15);
  EXPECT_NEAR(m.add(F("fp32")).energy_pj(), 0.9, 1e-15);
  EXPECT_NEAR(m.multiply(F("fp16"), F("fp16")).energy_pj(), 1.1, 1e-15);
  EXPECT_NEAR(m.multiply(F("fp32"), F("fp32")).energy_pj(), 3.7, 1e-15);
  EXPECT_NEAR(*m.add(F("fp16")).area_um2(), 1360, 1e-9);
  EXPECT_NEAR(*m.add(F("fp32")).area_um2(), 4184, 1e-9);
  EXPECT_NEAR(*m.multiply(F("fp16"), F("fp16")).area_um2(), 1640, 1e-9);
  EXPECT_NEAR(*m.multiply(F("fp32"), F("fp32")).area_um2(), 7700, 1e-9);
}

// SRAM 8 KB / 32 KB / 1 MB: 10 / 20 / 100 pJ per 64-bit access; DRAM 1.3-2.6 nJ per 64 bits.
TEST(CostTableAnchors, MemoriesReproduceHorowitzPerAccess) {
  const CostModel& m = model45();
  EXPECT_DOUBLE_EQ(m.sram_read_energy_pj(8 * 1024, 64), 10);
  EXPECT_DOUBLE_EQ(m.sram_read_energy_pj(32 * 1024, 64), 20);
  EXPECT_DOUBLE_EQ(m.sram_read_energy_pj(1024 * 1024, 64), 100);
  EXPECT_DOUBLE_EQ(m.dram_energy_pj(64), 1300);
  CostTarget high;
  high.dram_end = DramEnd::High;
  EXPECT_DOUBLE_EQ(CostModel::load_default(high).dram_energy_pj(64), 2600);
  // Han et al. NIPS 2015, Table 1: 32 bit register file 1 pJ.
  EXPECT_DOUBLE_EQ(m.register_file_energy_pj(32), 1.0);
}

// Units: a 32-bit read of the 8 KB SRAM costs half a 64-bit read (Han et al. 2015 list 5 pJ for a
// 32-bit SRAM access), and a per-bit figure is multiplied by bits, never by words.
TEST(CostTableAnchors, MemoryEnergyScalesWithBitsPerAccess) {
  const CostModel& m = model45();
  EXPECT_DOUBLE_EQ(m.sram_read_energy_pj(8 * 1024, 32), 5);
  EXPECT_DOUBLE_EQ(m.dram_energy_pj(8), 1300.0 / 8);
  EXPECT_DOUBLE_EQ(m.dram_energy_pj(1) * 64, m.dram_energy_pj(64));
}

TEST(CostTableAnchors, EveryDefaultEntryCitesItsSource) {
  for (const TableEntry& e : CostTable::load_default().entries) EXPECT_FALSE(e.source.empty()) << e.id;
  EXPECT_EQ(CostTable::load_default().node_nm, 45);
  EXPECT_EQ(CostTable::load_default().vdd_v, 0.9);
}

TEST(CostTableErrors, NameTheEntry) {
  const std::string good8 = R"({"id": "int_mul_8", "kind": "int_mul", "bits": 8, "per": "op", "energy_pj": 0.2, "source": "s"})";
  expect_table_error(table_with(R"({"id": "int_mul_8", "kind": "int_mul", "bits": 8, "per": "op", "source": "s"})"),
                     {"user.json", "entry 'int_mul_8'", "missing 'energy_pj'"});
  expect_table_error(table_with(R"({"id": "int_mul_8", "kind": "int_mul", "bits": 8, "per": "op", "energy_pj": "abc", "source": "s"})"),
                     {"entry 'int_mul_8'", "'energy_pj' must be a positive number", "\"abc\""});
  expect_table_error(table_with(R"({"id": "m", "kind": "int_mul", "bits": 8, "per": "op", "energy_pj": -1, "source": "s"})"),
                     {"entry 'm'", "positive"});
  expect_table_error(table_with(R"({"id": "div", "kind": "int_div", "bits": 8, "per": "op", "energy_pj": 1, "source": "s"})"),
                     {"entry 'div'", "unknown kind 'int_div'"});
  expect_table_error(table_with(R"({"id": "a8", "kind": "int_add", "bits": 8, "per": "bit", "energy_pj": 1, "source": "s"})"),
                     {"entry 'a8'", "'per' must be 'op'"});
  expect_table_error(table_with(R"({"id": "s", "kind": "sram_read", "capacity_bytes": 1024, "per": "word", "energy_pj": 1, "source": "s"})"),
                     {"entry 's'", "'per' must be 'access' or 'bit'"});
  expect_table_error(table_with(R"({"id": "s", "kind": "sram_read", "capacity_bytes": 1024, "per": "access", "energy_pj": 1, "source": "s"})"),
                     {"entry 's'", "missing 'access_bits'"});
  expect_table_error(table_with(R"({"id": "x", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 1})"),
                     {"entry 'x'", "missing 'source'"});
  expect_table_error(table_with(good8 + "," + good8), {"entry 'int_mul_8'", "duplicate id"});
  expect_table_error(table_with(R"({"kind": "int_add", "bits": 8, "per": "op", "energy_pj": 1, "source": "s"})"),
                     {"entry #1", "missing 'id'"});
  expect_table_error(table_with(R"({"id": "w", "kind": "int_add", "bits": 0, "per": "op", "energy_pj": 1, "source": "s"})"),
                     {"entry 'w'", "'bits' must be an integer in 1..256"});
}

TEST(CostTableErrors, AnchorsMustGrowWithWidth) {
  expect_table_error(table_with(R"({"id": "add8", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.03, "source": "s"},
                                   {"id": "add16", "kind": "int_add", "bits": 16, "per": "op", "energy_pj": 0.02, "source": "s"})"),
                     {"entry 'add16'", "does not grow", "'add8'"});
  expect_table_error(table_with(R"({"id": "add8", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.03, "source": "s"},
                                   {"id": "add8b", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.05, "source": "s"})"),
                     {"'add8'", "'add8b'", "same width"});
  // A float unit cheaper than its own exponent adder cannot be split into exponent + significand.
  expect_table_error(table_with(R"({"id": "add8", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.03, "source": "s"},
                                   {"id": "fadd", "kind": "fp_add", "exp_bits": 8, "man_bits": 7, "per": "op", "energy_pj": 0.01, "source": "s"})"),
                     {"entry 'fadd'", "not above", "exponent adder"});
}

TEST(CostTableErrors, BadJsonAndBadTopLevel) {
  expect_table_error("{\"name\": ", {"user.json", "not valid JSON"});
  expect_table_error("[1, 2]", {"user.json", "top level must be a JSON object"});
  expect_table_error(R"({"name": "t", "source": "s", "node_nm": 45, "vdd_v": 0.9, "entries": []})", {"'entries' must be a non-empty array"});
  expect_table_error(R"({"name": "t", "source": "s", "node_nm": 0, "vdd_v": 0.9, "entries": [1]})", {"'node_nm' must be a positive number"});
  EXPECT_THROW(CostTable::load("/nonexistent/table.json"), TableError);
}

// A user's own table (their synthesis at 28 nm): its numbers come back at its node, and it scales
// from there.
TEST(CostTableUser, OwnNodeAndNumbers) {
  const CostTable t = CostTable::parse(
      table_with(R"({"id": "a8", "kind": "int_add", "bits": 8, "per": "op", "energy_pj": 0.011, "area_um2": 9, "source": "my synthesis"},
                    {"id": "m8", "kind": "int_mul", "bits": 8, "per": "op", "energy_pj": 0.07, "source": "my synthesis"})"),
      "user.json");
  const CostModel m(t, NodeScaling::load_default());
  EXPECT_DOUBLE_EQ(m.add(F("int<8>")).energy_pj(), 0.011);
  EXPECT_DOUBLE_EQ(m.multiply(F("int<8>"), F("int<8>")).energy_pj(), 0.07);
  EXPECT_FALSE(m.multiply(F("int<8>"), F("int<8>")).area_um2().has_value());  // no area given
  EXPECT_EQ(m.target_point().node_nm, 28);
  // One anchor: the documented order beyond it (O(k) adder, O(ka kb) multiplier).
  EXPECT_DOUBLE_EQ(m.add(F("int<16>")).energy_pj(), 0.022);
  EXPECT_DOUBLE_EQ(m.multiply(F("int<16>"), F("int<16>")).energy_pj(), 0.28);
  EXPECT_THROW(m.add(F("fp16")), CostError);  // no fp_add anchors
  CostTarget to7;
  to7.node_nm = 7;
  const CostModel m7(t, NodeScaling::load_default(), to7);
  EXPECT_LT(m7.add(F("int<8>")).energy_pj(), 0.011);
}
