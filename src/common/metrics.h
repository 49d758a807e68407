// The process-wide Prometheus metrics registry (prometheus-cpp core) and its
// text exposition, served on every role's `/metrics`. Thread-safe.
//
// Usage: `auto& c = Metrics::Global().Counter("needlefs_volume_reads_total",
// "Needle reads", {{"volume", "3"}}); c.Increment();` (include
// <prometheus/counter.h> where Increment is called). Asking twice for the same
// name and labels returns the same metric.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace needlefs {

struct HttpResponse;

using MetricLabels = std::map<std::string, std::string>;

class Metrics {
 public:
  /// The process-wide registry.
  static Metrics& Global();
  Metrics();
  ~Metrics();

  /// A monotonically increasing counter. The reference lives as long as the
  /// registry.
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const MetricLabels& labels = {});
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help,
                           const MetricLabels& labels = {});
  /// A histogram with the given upper bucket bounds (seconds for latencies).
  prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                   const MetricLabels& labels, const std::vector<double>& buckets);
  /// The Prometheus text exposition format (version 0.0.4) of all metrics.
  std::string RenderText() const;
  /// The answer to GET /metrics on every role: RenderText() with the
  /// Prometheus text Content-Type.
  HttpResponse HttpExposition() const;

  /// Default latency buckets in seconds: 100 us .. 10 s.
  static std::vector<double> LatencyBuckets();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace needlefs
