// The server's metrics, rendered in the Prometheus text format (GET /metrics): requests by
// route, transport and status, latency histograms by route, batch sizes, queue depth, memories,
// mapped and resident bytes. Counting is lock-free on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace linattn::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Lines of `name`_bucket / _sum / _count with `labels` ("route=\"lookup\"", or empty).
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<int64_t>> counts_;  // one per bound, then +Inf
  std::atomic<double> sum_{0.0};
};

enum class Route { health, metrics, list, info, lookup, search, put, attend, other, count };
const char* route_name(Route route);

class Metrics {
 public:
  Metrics();
  // One request's outcome: the HTTP status (gRPC codes are counted as their HTTP equivalents in
  // the `code` label, and the transport in `transport`).
  void request(Route route, bool grpc, int http_status, double seconds);
  void batch(int64_t rows, int64_t requests);
  void reload_error();

  struct Gauges {
    int64_t queued = 0, memories = 0, mapped_bytes = 0, banks = 0;
    bool ready = false;
  };
  std::string render(const Gauges& gauges) const;

 private:
  static constexpr int kStatuses = 14;  // 200 201 400 401 403 404 405 409 413 415 429 500 503 504
  static int status_slot(int http_status);
  static constexpr int kRoutes = static_cast<int>(Route::count);
  std::array<std::array<std::array<std::atomic<int64_t>, kStatuses>, 2>, kRoutes> requests_{};
  std::vector<std::unique_ptr<Histogram>> latency_;  // by route
  Histogram batch_rows_, batch_requests_;
  std::atomic<int64_t> reload_errors_{0};
};

}  // namespace linattn::serve
