// The metrics model: families of counters, gauges and histograms, produced at scrape time.
//
// Nothing here is touched on a hot path. Components keep their own figures (relaxed atomics,
// per-shard Histograms); a Registry holds collector callbacks, registered once at start-up,
// that read those figures when someone asks (a /metrics scrape, the dashboard's tick) and turn
// them into Families. A scrape therefore costs the reader, never the writer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/histogram.h"

namespace slip::obs {

enum class MetricType : std::uint8_t { kCounter, kGauge, kHistogram };

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  Labels labels;
  double value = 0;
};

struct HistogramSample {
  Labels labels;
  HistogramSnapshot values;  // in the histogram's recording unit (e.g. nanoseconds)
};

// One metric family: a name, help text, a type and its labelled samples. Histogram families
// carry `unit_scale` (recorded unit -> exported unit, 1e-9 for nanoseconds -> seconds) and
// their bucket bounds in the exported unit, ascending; "+Inf" is implied.
struct Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<Sample> samples;
  std::vector<HistogramSample> histograms;
  double unit_scale = 1.0;
  std::vector<double> bounds;

  Family& add(double value, Labels labels = {}) {
    samples.push_back(Sample{std::move(labels), value});
    return *this;
  }
};

// Latency bucket bounds in seconds, 1 us to 10 s in 1-2.5-5 steps.
const std::vector<double>& latency_bounds_seconds();

// Collectors run in registration order; each appends the families it owns.
class Registry {
 public:
  using Collector = std::function<void(std::vector<Family>&)>;
  void add_collector(Collector c) { collectors_.push_back(std::move(c)); }
  std::vector<Family> collect() const {
    std::vector<Family> out;
    for (const auto& c : collectors_) c(out);
    return out;
  }

 private:
  std::vector<Collector> collectors_;
};

inline Family counter(std::string name, std::string help) {
  Family f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = MetricType::kCounter;
  return f;
}
inline Family gauge(std::string name, std::string help) {
  Family f = counter(std::move(name), std::move(help));
  f.type = MetricType::kGauge;
  return f;
}
// A latency histogram recorded in nanoseconds, exported in seconds.
inline Family latency_histogram(std::string name, std::string help) {
  Family f = counter(std::move(name), std::move(help));
  f.type = MetricType::kHistogram;
  f.unit_scale = 1e-9;
  f.bounds = latency_bounds_seconds();
  return f;
}

}  // namespace slip::obs
