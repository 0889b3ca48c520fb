#include "bitsim/sim/gemm_run.hpp"

namespace bitsim::sim {

namespace {
const sc_core::sc_time kPeriod(10, sc_core::SC_NS);
}

ArrayHarness::ArrayHarness(const std::string& name, const ArrayConfig& cfg, const std::string& vcd_path)
    : clk_(std::make_unique<sc_core::sc_clock>((name + "_clk").c_str(), kPeriod)),
      rst_((name + "_rst").c_str()),
      start_((name + "_start").c_str()),
      busy_((name + "_busy").c_str()),
      done_((name + "_done").c_str()),
      array_(std::make_unique<SystolicArray>(name.c_str(), cfg)) {
  array_->clk(*clk_);
  array_->rst(rst_);
  array_->start(start_);
  array_->busy(busy_);
  array_->done(done_);
  if (!vcd_path.empty()) {
    vcd_ = sc_core::sc_create_vcd_trace_file(vcd_path.c_str());
    vcd_->set_time_unit(1, sc_core::SC_NS);
    array_->trace(vcd_);
  }
}

ArrayHarness::~ArrayHarness() {
  if (vcd_) sc_core::sc_close_vcd_trace_file(vcd_);
}

GemmResult ArrayHarness::run(GemmOperands ops, const Mapping& mapping, const std::function<void(double)>& progress) {
  const double macs = double(ops.shape.m) * double(ops.shape.k) * double(ops.shape.n);
  array_->load(std::move(ops), mapping);
  return simulate(macs, progress);
}

GemmResult ArrayHarness::run(ConvOperands ops, const Mapping& mapping, const std::function<void(double)>& progress) {
  const GemmShape g = ops.shape.gemm();
  array_->load(std::move(ops), mapping);
  return simulate(double(g.m) * double(g.k) * double(g.n), progress);
}

GemmResult ArrayHarness::simulate(double macs, const std::function<void(double)>& progress) {
  rst_.write(true);
  sc_core::sc_start(kPeriod);
  rst_.write(false);
  start_.write(true);
  sc_core::sc_start(kPeriod);
  start_.write(false);
  // The array counts its own cycles; simulating past `done` changes nothing, so advance in steps.
  for (long step = 0; !done_.read(); ++step) {
    sc_core::sc_start(kPeriod * 64);
    if (progress && step % 256 == 0) progress(double(array_->result().stats.macs) / macs);
  }
  if (progress) progress(1.0);
  return array_->result();
}

}  // namespace bitsim::sim
