#include "metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace linattn::serve {
namespace {

constexpr int kStatusCodes[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503, 504};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<double> latency_bounds() {
  // 10 us to 10 s: a lookup is microseconds, a large search or put can be seconds.
  return {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 10};
}

std::vector<double> powers_of_two(double top) {
  std::vector<double> b;
  for (double v = 1; v <= top; v *= 2) b.push_back(v);
  return b;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double s = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(s, s + value, std::memory_order_relaxed)) {
  }
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out += name + "_bucket{" + labels + sep + "le=\"" + (i < bounds_.size() ? number(bounds_[i]) : "+Inf") +
           "\"} " + std::to_string(cumulative) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + number(sum_.load(std::memory_order_relaxed)) + "\n";
  out += name + "_count" + braces + " " + std::to_string(cumulative) + "\n";
}

const char* route_name(Route route) {
  switch (route) {
    case Route::health: return "health";
    case Route::metrics: return "metrics";
    case Route::list: return "list";
    case Route::info: return "info";
    case Route::lookup: return "lookup";
    case Route::search: return "search";
    case Route::put: return "put";
    case Route::attend: return "attend";
    default: return "other";
  }
}

Metrics::Metrics() : batch_rows_(powers_of_two(4096)), batch_requests_(powers_of_two(4096)) {
  for (int r = 0; r < kRoutes; ++r) latency_.push_back(std::make_unique<Histogram>(latency_bounds()));
}

int Metrics::status_slot(int http_status) {
  for (int i = 0; i < kStatuses; ++i)
    if (kStatusCodes[i] == http_status) return i;
  return 11;  // anything else is counted as 500
}

void Metrics::request(Route route, bool grpc, int http_status, double seconds) {
  const auto r = static_cast<size_t>(route);
  requests_[r][grpc ? 1 : 0][static_cast<size_t>(status_slot(http_status))].fetch_add(1, std::memory_order_relaxed);
  latency_[r]->observe(seconds);
}

void Metrics::batch(int64_t rows, int64_t requests) {
  batch_rows_.observe(static_cast<double>(rows));
  batch_requests_.observe(static_cast<double>(requests));
}

void Metrics::reload_error() { reload_errors_.fetch_add(1, std::memory_order_relaxed); }

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  out += "# HELP linattn_requests_total Requests answered, by route, transport and status.\n";
  out += "# TYPE linattn_requests_total counter\n";
  for (int r = 0; r < kRoutes; ++r)
    for (int t = 0; t < 2; ++t)
      for (int s = 0; s < kStatuses; ++s) {
        const int64_t n = requests_[static_cast<size_t>(r)][static_cast<size_t>(t)][static_cast<size_t>(s)].load(
            std::memory_order_relaxed);
        if (n == 0) continue;
        out += std::string("linattn_requests_total{route=\"") + route_name(static_cast<Route>(r)) +
               "\",transport=\"" + (t ? "grpc" : "http") + "\",code=\"" + std::to_string(kStatusCodes[s]) + "\"} " +
               std::to_string(n) + "\n";
      }
  out += "# HELP linattn_request_duration_seconds Time from a request's decoding to its answer, by route.\n";
  out += "# TYPE linattn_request_duration_seconds histogram\n";
  for (int r = 0; r < kRoutes; ++r)
    latency_[static_cast<size_t>(r)]->render(out, "linattn_request_duration_seconds",
                                            std::string("route=\"") + route_name(static_cast<Route>(r)) + "\"");
  out += "# HELP linattn_batch_queries Queries per batched kernel call.\n# TYPE linattn_batch_queries histogram\n";
  batch_rows_.render(out, "linattn_batch_queries", "");
  out += "# HELP linattn_batch_requests Requests per batched kernel call.\n# TYPE linattn_batch_requests histogram\n";
  batch_requests_.render(out, "linattn_batch_requests", "");
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
           std::to_string(v) + "\n";
  };
  gauge("linattn_queue_depth", "Requests waiting for a batch.", g.queued);
  gauge("linattn_memories", "Memories served.", g.memories);
  gauge("linattn_banks", "Bank files served.", g.banks);
  gauge("linattn_mapped_bytes", "Bytes of the bank files mapped (address space, not memory).", g.mapped_bytes);
  gauge("linattn_resident_bytes", "The process's resident memory.", resident_bytes());
  gauge("linattn_ready", "1 once the server answers requests.", g.ready ? 1 : 0);
  out += "# HELP linattn_reload_errors_total Bank reloads that failed (the previous state is kept).\n";
  out += "# TYPE linattn_reload_errors_total counter\n";
  out += "linattn_reload_errors_total " + std::to_string(reload_errors_.load(std::memory_order_relaxed)) + "\n";
  return out;
}

}  // namespace linattn::serve
