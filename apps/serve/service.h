// The lookup service, independent of its transports: memories by name (catalog.h), lookups and
// searches through the batching scheduler (scheduler.h), appends, rate limiting and metrics.
// The HTTP and gRPC front ends decode requests into these calls and encode their answers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "catalog.h"
#include "linattn/memory/search.h"
#include "metrics.h"
#include "npy.h"
#include "scheduler.h"
#include "status.h"

namespace linattn::serve {

struct MemoryDescription {
  std::string name, bank;
  MemoryInfo info;
  int64_t bytes = 0;  // stored bytes, header included
};

struct LookupCall {
  std::string name;
  npy::Matrix queries;  // [m, dk]
  bool mean = false;
  float scale = 1.f;
  Clock::time_point deadline = Clock::time_point::max();
};

struct SearchCall {
  npy::Matrix queries;             // [m, dk]
  int64_t k = 10;
  std::vector<std::string> names;  // empty: every memory
  SearchScore score = SearchScore::quadratic;
  bool mean = false;
  float scale = 1.f;
  Clock::time_point deadline = Clock::time_point::max();
};

struct SearchHit {
  std::string name;
  float score = 0.f;
};
using SearchAnswer = std::vector<std::vector<SearchHit>>;  // per query, best first

struct PutCall {
  std::string name;
  npy::Matrix keys;                   // [T, dk]
  std::optional<npy::Matrix> values;  // [T, dv]; absent: the keys are the values
  std::optional<npy::Matrix> gates;   // [T, 1] (or [1, T]); present: a gated memory
  std::string dtype = "f32";
  std::optional<bool> symmetric;      // default: no values given and dk = dv
  std::optional<std::string> feature_map;  // default: the bank's (identity for an empty bank)
  std::optional<bool> normalize;           // default: the bank's (false for an empty bank)
};

class Service {
 public:
  struct Options {
    Scheduler::Limits limits;
    bool verify = false;                         // check every memory's checksum at start
    double max_rps = 0;                          // requests per second over all clients; 0: no limit
    int kernel_threads = 1;                      // threads per kernel call (batches run side by side)
    std::chrono::milliseconds reload_interval{250};
    int64_t max_queries = 65536;                 // queries in one request
    int64_t max_k = 10000;
    int64_t max_put_tokens = 1 << 22;
    std::string states_dir;  // every NAME.npy in it: a document's hidden states, for attend()
  };

  Service(std::vector<std::string> banks, Options options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  bool ready() const { return ready_.load(); }
  std::vector<MemoryDescription> list() const;
  MemoryDescription info(const std::string& name) const;  // ServiceError not_found

  // Asynchronous: `done` is called exactly once, possibly before these return and possibly on
  // another thread (the one that ran the batch). Errors detected at once are thrown as
  // ServiceError instead (done is then not called).
  void lookup(LookupCall call, std::function<void(Status, npy::Matrix)> done);
  void search(SearchCall call, std::function<void(Status, SearchAnswer)> done);
  MemoryDescription put(const PutCall& call);  // synchronous: returns once durable

  // The baseline a user would run without fixed-size memories: softmax attention over a
  // document's stored hidden states H [T, d] (keys = values = H, scores q.h / sqrt(d)), from the
  // documents of Options::states_dir, batched like lookups. call.name names the document.
  void attend(LookupCall call, std::function<void(Status, npy::Matrix)> done);
  int64_t state_documents() const { return static_cast<int64_t>(states_.size()); }

  // The rate limit (a token bucket refilled at max_rps, holding one second's worth): throws
  // ServiceError overloaded when over it.
  void admit();
  Metrics& metrics() { return metrics_; }
  std::string render_metrics() const;
  const Options& options() const { return options_; }

  // Refuses new work, finishes what is queued or running, stops reloading.
  void drain();

 private:
  void reload_loop();
  static MemoryDescription describe(const Catalog& catalog, const CatalogEntry& entry);

  Options options_;
  Library library_;
  Metrics metrics_;
  Scheduler scheduler_;
  std::atomic<bool> ready_{false};
  std::unordered_map<std::string, npy::Matrix> states_;

  std::mutex rate_mutex_;
  double rate_tokens_ = 0;
  Clock::time_point rate_time_{};

  std::mutex reload_mutex_;
  std::condition_variable reload_wake_;
  bool stopping_ = false;
  std::thread reloader_;
};

}  // namespace linattn::serve
