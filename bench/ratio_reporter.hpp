// A Google Benchmark console reporter that also keeps each run's items_per_second, so a benchmark's
// main() can print throughputs as ratios to a baseline measured in the same run.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace bitsim::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> items_per_second;  // by benchmark name
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      const auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) items_per_second[run.benchmark_name()] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace bitsim::bench
