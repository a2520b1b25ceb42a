#include "service.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "linattn/core/error.h"
#include "linattn/core/threads.h"
#include "linattn/memory/memory_file.h"
#include "linattn/ops/softmax_attention.h"

namespace linattn::serve {
namespace {

std::string float_key(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return std::to_string(bits);
}

std::string pointer_key(const void* p) { return std::to_string(reinterpret_cast<uintptr_t>(p)); }

// Branch-free, so that it vectorises: every request's numbers pass through it.
bool all_finite(const float* p, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

void require_finite_rows(const npy::Matrix& m, const std::string& what) {
  if (all_finite(m.data.data(), m.data.size())) return;
  for (size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      throw ServiceError(Code::invalid_argument, what + " has a non-finite value (NaN or Inf) at row " +
                                                     std::to_string(static_cast<int64_t>(i) / std::max<int64_t>(m.cols, 1)) +
                                                     ", column " + std::to_string(static_cast<int64_t>(i) % std::max<int64_t>(m.cols, 1)));
}

// The checks every request's queries pass: width (`width_owner` names what has it), count, finite.
void check_queries(const npy::Matrix& q, int64_t width, const std::string& width_owner, int64_t max_queries) {
  if (q.cols != width)
    throw ServiceError(Code::invalid_argument, "queries have " + std::to_string(q.cols) + " columns; " + width_owner +
                                                   " " + std::to_string(width));
  if (q.rows > max_queries)
    throw ServiceError(Code::too_large, std::to_string(q.rows) + " queries in one request: at most " +
                                            std::to_string(max_queries));
  require_finite_rows(q, "the queries");
}

Status status_of_current_exception() {
  try {
    throw;
  } catch (const ArgumentError& e) {
    return {Code::invalid_argument, e.what()};
  } catch (const std::bad_alloc&) {
    return {Code::overloaded, "not enough memory for this request"};
  } catch (const std::exception& e) {
    return {Code::internal, e.what()};
  }
}

// In a catch block: every job of the batch fails with the exception's status.
void fail_batch(std::span<std::unique_ptr<Scheduler::Job>> batch) {
  const Status s = status_of_current_exception();
  for (auto& j : batch) j->fail(s);
}

const char* const kOverflow = "the results overflow float32: scale the queries or the scale down";

// The queries of a batch, one matrix: the only job's own rows, or every job's concatenated.
template <class J>
const float* gather_queries(std::span<std::unique_ptr<Scheduler::Job>> batch, int64_t dk, int64_t& total,
                            std::vector<float>& buffer) {
  total = 0;
  for (const auto& j : batch) total += j->rows;
  if (batch.size() == 1) return static_cast<J&>(*batch[0]).queries.data.data();
  buffer.resize(static_cast<size_t>(total * dk));
  int64_t row = 0;
  for (const auto& j : batch) {
    const npy::Matrix& q = static_cast<J&>(*j).queries;
    std::copy(q.data.begin(), q.data.end(), buffer.begin() + row * dk);
    row += q.rows;
  }
  return buffer.data();
}

// Runs compute(queries, total, results) once over the batch's queries (J's, `width` columns) and
// hands every job its own rows of the `out_width`-column results.
template <class J, class Compute>
void run_row_batch(std::span<std::unique_ptr<Scheduler::Job>> batch, int64_t width, int64_t out_width,
                   int kernel_threads, const Compute& compute) {
  int64_t total = 0;
  std::vector<float> buffer, results;
  try {
    set_num_threads(kernel_threads);
    const float* q = gather_queries<J>(batch, width, total, buffer);
    results.resize(static_cast<size_t>(total * out_width));
    compute(q, total, results.data());
  } catch (...) {
    fail_batch(batch);
    return;
  }
  int64_t row = 0;
  for (auto& j : batch) {
    auto& job = static_cast<J&>(*j);
    npy::Matrix out{job.rows, out_width, {}};
    if (batch.size() == 1) {
      out.data = std::move(results);
    } else {
      const auto first = results.begin() + row * out_width;
      out.data.assign(first, first + job.rows * out_width);
    }
    row += job.rows;
    if (!all_finite(out.data.data(), out.data.size()))
      job.done({Code::invalid_argument, kOverflow}, {});
    else
      job.done({}, std::move(out));
  }
}

class LookupJob final : public Scheduler::Job {
 public:
  std::shared_ptr<const Catalog> catalog;  // keeps `view` mapped
  const MemoryView* view = nullptr;
  npy::Matrix queries;
  LookupOptions options;
  int kernel_threads = 1;
  std::function<void(Status, npy::Matrix)> done;

  void fail(const Status& status) override { done(status, {}); }

  void run(std::span<std::unique_ptr<Scheduler::Job>> batch) override {
    const int64_t dk = view->info().config.key_dim, dv = view->info().config.value_dim;
    run_row_batch<LookupJob>(batch, dk, dv, kernel_threads, [&](const float* q, int64_t total, float* r) {
      view->lookup(CView2::contiguous(q, {total, dk}), View2::contiguous(r, {total, dv}), options);
    });
  }
};

class AttendJob final : public Scheduler::Job {
 public:
  const npy::Matrix* states = nullptr;  // [T, d], owned by the Service
  npy::Matrix queries;
  int kernel_threads = 1;
  std::function<void(Status, npy::Matrix)> done;

  void fail(const Status& status) override { done(status, {}); }

  void run(std::span<std::unique_ptr<Scheduler::Job>> batch) override {
    const int64_t d = states->cols, t = states->rows;
    const float* h = states->data.data();
    run_row_batch<AttendJob>(batch, d, d, kernel_threads, [&](const float* q, int64_t total, float* r) {
      softmax_attention(CView4::contiguous(q, {1, 1, total, d}), CView4::contiguous(h, {1, 1, t, d}),
                        CView4::contiguous(h, {1, 1, t, d}), View4::contiguous(r, {1, 1, total, d}));
    });
  }
};

class SearchJob final : public Scheduler::Job {
 public:
  std::shared_ptr<const Catalog> catalog;
  std::vector<int64_t> selection;  // positions in catalog->memories; empty: all
  npy::Matrix queries;
  SearchOptions options;           // options.k: this job's k
  int kernel_threads = 1;
  std::function<void(Status, SearchAnswer)> done;

  void fail(const Status& status) override { done(status, {}); }

  void run(std::span<std::unique_ptr<Scheduler::Job>> batch) override {
    const int64_t dk = queries.cols;
    int64_t total = 0, k = 0;
    for (const auto& j : batch) k = std::max(k, static_cast<SearchJob&>(*j).options.k);
    std::vector<float> buffer;
    std::vector<const MemoryView*> chosen;
    SearchResults r;
    try {
      set_num_threads(kernel_threads);
      const float* q = gather_queries<SearchJob>(batch, dk, total, buffer);
      std::span<const MemoryView* const> views = catalog->views;
      if (!selection.empty()) {
        for (const int64_t i : selection) chosen.push_back(catalog->memories[static_cast<size_t>(i)].view);
        views = chosen;
      }
      SearchOptions o = options;
      o.k = k;  // each job keeps its own first k: the order is total (memory/search.h)
      r = linattn::search(views, CView2::contiguous(q, {total, dk}), o);
    } catch (...) {
      fail_batch(batch);
      return;
    }
    int64_t row = 0;
    for (auto& j : batch) {
      auto& job = static_cast<SearchJob&>(*j);
      const int64_t keep = std::min(job.options.k, r.k);
      SearchAnswer answer(static_cast<size_t>(job.rows));
      for (int64_t qi = 0; qi < job.rows; ++qi)
        for (int64_t h = 0; h < keep; ++h) {
          const auto at = static_cast<size_t>((row + qi) * r.k + h);
          const int64_t pos = selection.empty() ? r.index[at] : selection[static_cast<size_t>(r.index[at])];
          answer[static_cast<size_t>(qi)].push_back({catalog->memories[static_cast<size_t>(pos)].name, r.score[at]});
        }
      row += job.rows;
      job.done({}, std::move(answer));
    }
  }
};

}  // namespace

Service::Service(std::vector<std::string> banks, Options options)
    : options_(std::move(options)),
      library_(std::move(banks), options_.verify),
      scheduler_(options_.limits, [this](int64_t rows, int64_t requests) { metrics_.batch(rows, requests); }) {
  if (!options_.states_dir.empty()) {
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(options_.states_dir, ec)) {
      if (f.path().extension() != ".npy") continue;
      npy::Matrix h = npy::load(f.path().string());
      if (h.rows == 0) throw Error(f.path().string() + ": no states (0 rows)");
      states_.emplace(f.path().stem().string(), std::move(h));
    }
    if (ec) throw Error("--states " + options_.states_dir + ": " + ec.message());
  }
  rate_tokens_ = options_.max_rps;
  rate_time_ = Clock::now();
  reloader_ = std::thread([this] { reload_loop(); });
  ready_ = true;
}

Service::~Service() {
  {
    std::lock_guard lock(reload_mutex_);
    stopping_ = true;
  }
  reload_wake_.notify_all();
  if (reloader_.joinable()) reloader_.join();
}

void Service::reload_loop() {
  std::set<std::string> reported;
  std::unique_lock lock(reload_mutex_);
  while (!reload_wake_.wait_for(lock, options_.reload_interval, [&] { return stopping_; })) {
    lock.unlock();
    std::set<std::string> now;
    for (const std::string& p : library_.refresh()) {
      now.insert(p);
      metrics_.reload_error();
      if (!reported.count(p)) std::fprintf(stderr, "linattn serve: %s (still serving the previous state)\n", p.c_str());
    }
    reported = std::move(now);
    lock.lock();
  }
}

void Service::drain() {
  ready_ = false;
  scheduler_.drain();
  std::lock_guard lock(reload_mutex_);
  stopping_ = true;
  reload_wake_.notify_all();
}

void Service::admit() {
  if (options_.max_rps <= 0) return;
  std::lock_guard lock(rate_mutex_);
  const Clock::time_point now = Clock::now();
  rate_tokens_ = std::min(options_.max_rps,
                          rate_tokens_ + std::chrono::duration<double>(now - rate_time_).count() * options_.max_rps);
  rate_time_ = now;
  if (rate_tokens_ < 1) throw ServiceError(Code::overloaded, "over the server's rate limit: retry later");
  rate_tokens_ -= 1;
}

MemoryDescription Service::describe(const Catalog& catalog, const CatalogEntry& e) {
  return {e.name, catalog.banks[static_cast<size_t>(e.bank)]->path(), e.view->info(),
          kMemoryHeaderBytes + e.view->info().payload_bytes};
}

std::vector<MemoryDescription> Service::list() const {
  const auto c = library_.current();
  std::vector<MemoryDescription> out;
  out.reserve(c->memories.size());
  for (const CatalogEntry& e : c->memories) out.push_back(describe(*c, e));
  return out;
}

MemoryDescription Service::info(const std::string& name) const {
  const auto c = library_.current();
  const CatalogEntry* e = c->find(name);
  if (!e) throw ServiceError(Code::not_found, "no memory named '" + name + "'");
  return describe(*c, *e);
}

std::string Service::render_metrics() const {
  const auto c = library_.current();
  return metrics_.render({.queued = scheduler_.queued(),
                          .memories = static_cast<int64_t>(c->memories.size()),
                          .mapped_bytes = c->mapped_bytes,
                          .banks = static_cast<int64_t>(c->banks.size()),
                          .ready = ready()});
}

void Service::lookup(LookupCall call, std::function<void(Status, npy::Matrix)> done) {
  auto c = library_.current();
  const CatalogEntry* e = c->find(call.name);
  if (!e) throw ServiceError(Code::not_found, "no memory named '" + call.name + "'");
  const MemoryConfig& config = e->view->info().config;
  if (call.queries.rows == 0) {
    done({}, npy::Matrix{0, config.value_dim, {}});
    return;
  }
  check_queries(call.queries, config.key_dim, "memory '" + call.name + "' has key width", options_.max_queries);
  if (!std::isfinite(call.scale)) throw ServiceError(Code::invalid_argument, "scale must be a finite number");
  if (call.mean && config.normalize)
    throw ServiceError(Code::invalid_argument, "mean does not apply to a normalising memory ('" + call.name + "')");
  auto job = std::make_unique<LookupJob>();
  job->key = "lookup " + pointer_key(e->view) + " " + (call.mean ? "mean " : "") + float_key(call.scale);
  job->rows = call.queries.rows;
  job->deadline = call.deadline;
  job->view = e->view;
  job->catalog = std::move(c);
  job->queries = std::move(call.queries);
  job->options = {.mean = call.mean, .scale = call.scale};
  job->kernel_threads = options_.kernel_threads;
  job->done = done;
  if (const Status s = scheduler_.submit(std::move(job)); !s.ok()) throw ServiceError(s.code, s.message);
}

void Service::attend(LookupCall call, std::function<void(Status, npy::Matrix)> done) {
  const auto it = states_.find(call.name);
  if (it == states_.end()) throw ServiceError(Code::not_found, "no stored states named '" + call.name + "'");
  const npy::Matrix& h = it->second;
  if (call.queries.rows == 0) {
    done({}, npy::Matrix{0, h.cols, {}});
    return;
  }
  check_queries(call.queries, h.cols, "the states of '" + call.name + "' have width", options_.max_queries);
  auto job = std::make_unique<AttendJob>();
  job->key = "attend " + pointer_key(&h);
  job->rows = call.queries.rows;
  job->deadline = call.deadline;
  job->states = &h;
  job->queries = std::move(call.queries);
  job->kernel_threads = options_.kernel_threads;
  job->done = std::move(done);
  if (const Status s = scheduler_.submit(std::move(job)); !s.ok()) throw ServiceError(s.code, s.message);
}

void Service::search(SearchCall call, std::function<void(Status, SearchAnswer)> done) {
  auto c = library_.current();
  if (call.k < 1) throw ServiceError(Code::invalid_argument, "k must be at least 1");
  if (call.k > options_.max_k)
    throw ServiceError(Code::invalid_argument, "k = " + std::to_string(call.k) + ": at most " + std::to_string(options_.max_k));
  if (call.queries.rows > options_.max_queries)
    throw ServiceError(Code::too_large, std::to_string(call.queries.rows) + " queries in one request: at most " +
                                            std::to_string(options_.max_queries));
  if (!std::isfinite(call.scale)) throw ServiceError(Code::invalid_argument, "scale must be a finite number");
  require_finite_rows(call.queries, "the queries");
  std::vector<int64_t> selection;
  std::string names_key;
  std::set<std::string> seen;
  for (const std::string& n : call.names) {
    const auto it = c->by_name.find(n);
    if (it == c->by_name.end()) throw ServiceError(Code::not_found, "no memory named '" + n + "'");
    if (!seen.insert(n).second) throw ServiceError(Code::invalid_argument, "memory '" + n + "' is named twice");
    selection.push_back(it->second);
    names_key += std::to_string(it->second) + ",";
  }
  if (c->memories.empty() || (call.queries.rows == 0)) {
    done({}, SearchAnswer(static_cast<size_t>(call.queries.rows)));
    return;
  }
  // Every searched memory must take these queries (the kernel would say so too, by position).
  const int64_t n = selection.empty() ? static_cast<int64_t>(c->memories.size()) : static_cast<int64_t>(selection.size());
  for (int64_t i = 0; i < n; ++i) {
    const CatalogEntry& e = c->memories[static_cast<size_t>(selection.empty() ? i : selection[static_cast<size_t>(i)])];
    const MemoryConfig& config = e.view->info().config;
    if (config.key_dim != call.queries.cols)
      throw ServiceError(Code::invalid_argument, "queries have " + std::to_string(call.queries.cols) +
                                                     " columns; memory '" + e.name + "' has key width " +
                                                     std::to_string(config.key_dim));
    if (call.score == SearchScore::quadratic && config.key_dim != config.value_dim)
      throw ServiceError(Code::invalid_argument, "the quadratic score needs key width = value width; memory '" + e.name +
                                                     "' is " + std::to_string(config.key_dim) + " x " +
                                                     std::to_string(config.value_dim) + " (use \"score\": \"norm\")");
    if (call.mean && config.normalize)
      throw ServiceError(Code::invalid_argument, "mean does not apply to a normalising memory ('" + e.name + "')");
  }
  auto job = std::make_unique<SearchJob>();
  job->key = "search " + pointer_key(c.get()) + " " + std::string(to_string(call.score)) + (call.mean ? " mean " : " ") +
             float_key(call.scale) + " " + names_key;
  job->rows = call.queries.rows;
  job->deadline = call.deadline;
  job->catalog = std::move(c);
  job->selection = std::move(selection);
  job->queries = std::move(call.queries);
  job->options = {.k = call.k, .score = call.score, .lookup = {.mean = call.mean, .scale = call.scale}};
  job->kernel_threads = options_.kernel_threads;
  job->done = done;
  if (const Status s = scheduler_.submit(std::move(job)); !s.ok()) throw ServiceError(s.code, s.message);
}

MemoryDescription Service::put(const PutCall& call) {
  if (!ready()) throw ServiceError(Code::unavailable, "the server is shutting down");
  const std::optional<int64_t> target = library_.writable_bank();
  if (!target) throw ServiceError(Code::permission_denied, "every bank served is read-only: no memory can be added");
  auto c = library_.current();
  if (c->find(call.name)) throw ServiceError(Code::already_exists, "a memory named '" + call.name + "' exists");
  const npy::Matrix& K = call.keys;
  if (K.rows == 0) throw ServiceError(Code::invalid_argument, "no keys: a memory needs at least one token");
  if (K.rows > options_.max_put_tokens)
    throw ServiceError(Code::too_large, std::to_string(K.rows) + " tokens in one put: at most " +
                                            std::to_string(options_.max_put_tokens));
  require_finite_rows(K, "the keys");
  if (call.values) {
    require_finite_rows(*call.values, "the values");
    if (call.values->rows != K.rows)
      throw ServiceError(Code::invalid_argument, std::to_string(call.values->rows) + " values for " +
                                                     std::to_string(K.rows) + " keys");
  }
  std::vector<float> gates;
  if (call.gates) {
    require_finite_rows(*call.gates, "the gates");
    if (call.gates->rows * call.gates->cols != K.rows || std::min(call.gates->rows, call.gates->cols) > 1)
      throw ServiceError(Code::invalid_argument, "gates must be one weight per key (" + std::to_string(K.rows) +
                                                     " x 1), got " + std::to_string(call.gates->rows) + " x " +
                                                     std::to_string(call.gates->cols));
    gates = call.gates->data;
  }
  // The bank's own configuration, from its first memory, is the default.
  const Bank& bank = *c->banks[static_cast<size_t>(*target)];
  MemoryConfig config;
  if (bank.size() > 0) config = bank.memory(0).info().config;
  config.key_dim = K.cols;
  config.value_dim = call.values ? call.values->cols : K.cols;
  if (bank.key_dim() > 0 && (config.key_dim != bank.key_dim() || config.value_dim != bank.value_dim()))
    throw ServiceError(Code::invalid_argument, "the memory would be " + std::to_string(config.key_dim) + " x " +
                                                   std::to_string(config.value_dim) + "; the bank " + bank.path() +
                                                   " holds " + std::to_string(bank.key_dim()) + " x " +
                                                   std::to_string(bank.value_dim()) + " memories");
  if (call.feature_map) {
    const auto fm = parse_feature_map(*call.feature_map);
    if (!fm) throw ServiceError(Code::invalid_argument, "unknown feature_map '" + *call.feature_map + "' (identity, elu+1, relu)");
    config.feature_map = *fm;
  }
  if (call.normalize) config.normalize = *call.normalize;
  const auto dtype = parse_dtype(call.dtype);
  if (!dtype) throw ServiceError(Code::invalid_argument, "unknown dtype '" + call.dtype + "' (f32 or bf16)");
  config.dtype = *dtype;
  config.gated = call.gates.has_value();
  config.symmetric = call.symmetric.value_or(!call.values && config.key_dim == config.value_dim &&
                                             config.feature_map == FeatureMap::identity);
  if (config.symmetric && call.values)
    throw ServiceError(Code::invalid_argument, "a symmetric memory stores keys = values: give no values");
  try {
    Memory m(config);
    const CView2 keys = CView2::contiguous(K.data.data(), {K.rows, K.cols});
    const CView2 values = config.symmetric ? CView2{}
                          : call.values   ? CView2::contiguous(call.values->data.data(), {K.rows, config.value_dim})
                                          : keys;
    m.write(keys, values, config.gated ? CView1(gates.data(), {K.rows}, {1}) : CView1{});
    Library::PutOutcome out = library_.put(call.name, m);
    if (out.exists) throw ServiceError(Code::already_exists, "a memory named '" + call.name + "' exists");
    return describe(*out.catalog, *out.entry);
  } catch (const ServiceError&) {
    throw;
  } catch (const ArgumentError& e) {
    throw ServiceError(Code::invalid_argument, e.what());
  }
}

}  // namespace linattn::serve
