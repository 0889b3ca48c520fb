// A one-line progress bar with elapsed time and ETA on stderr, drawn only when stderr is a
// terminal (so logs and pipes stay clean) and at most ten times a second.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace bitsim::app {

class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), tty_(isatty(fileno(stderr)) != 0) {}
  ~Progress() { finish(); }

  // fraction in [0, 1]; `note` is shown after the bar (e.g. the current loss).
  void update(double fraction, const std::string& note = "") {
    if (!tty_) return;
    const auto now = Clock::now();
    if (fraction < 1.0 && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
    const int width = 30, full = int(fraction * width + 0.5);
    fmt::print(stderr, "\r{} [{}{}] {:5.1f}%  {}  ETA {}{}\x1b[K", label_, std::string(std::size_t(full), '#'),
               std::string(std::size_t(width - full), '.'), 100 * fraction, clock(elapsed), clock(eta),
               note.empty() ? "" : "  " + note);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) fmt::print(stderr, "\n");
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string clock(double s) {
    const long t = long(s + 0.5);
    return fmt::format("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  }
  std::string label_;
  bool tty_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now(), last_{};
};

}  // namespace bitsim::app
