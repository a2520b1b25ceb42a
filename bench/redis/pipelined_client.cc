// linattn_redis_client: a pipelined Redis client for `make bench-redis`, with hiredis. Each
// connection keeps `--pipeline` requests in flight and sends the next batch when the last one is
// answered, for `--seconds`. It asks, per request, one of:
//   lookup      LA.LOOKUP key QUERIES q           (the module answers next to the data)
//   get         GET key                           (a plain value, the size of the answer)
//   get-state   GET key, then the lookup here     (a user of a plain key-value store: fetch the
//               stored .lam bytes, view them with the core, answer locally)
// The three run the same loop, so they are compared as equals. A request's latency is its
// batch's round trip (from sending the batch to its last answer). Prints one JSON object.
#include <hiredis/hiredis.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "linattn/memory/memory_file.h"

using Clock = std::chrono::steady_clock;

namespace {

struct Target {
  int port = 0;
  std::string key;
};

// "PORT=KEY"
Target parse_target(const std::string& s) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    throw std::invalid_argument("--target takes PORT=KEY, got '" + s + "'");
  return {std::stoi(s.substr(0, eq)), s.substr(eq + 1)};
}

struct Result {
  int64_t requests = 0, reply_bytes = 0;
  std::vector<double> latency_us;  // one per batch
  std::string error;
};

void run_connection(const Target& t, const std::string& mode, const std::string& query, int pipeline,
                    Clock::time_point end, Result& out) {
  redisContext* c = redisConnect("127.0.0.1", t.port);
  if (!c || c->err) {
    out.error = "cannot connect to 127.0.0.1:" + std::to_string(t.port) + (c ? std::string(": ") + c->errstr : "");
    if (c) redisFree(c);
    return;
  }
  const bool lookup = mode == "lookup";
  const char* argv_lookup[] = {"LA.LOOKUP", t.key.c_str(), "QUERIES", query.data()};
  const size_t len_lookup[] = {9, t.key.size(), 7, query.size()};
  const char* argv_get[] = {"GET", t.key.c_str()};
  const size_t len_get[] = {3, t.key.size()};
  const auto* q = reinterpret_cast<const float*>(query.data());
  const int64_t dk = static_cast<int64_t>(query.size() / 4);
  std::vector<float> answer;
  while (Clock::now() < end && out.error.empty()) {
    const auto t0 = Clock::now();
    for (int i = 0; i < pipeline; ++i) {
      if (lookup) redisAppendCommandArgv(c, 4, argv_lookup, len_lookup);
      else redisAppendCommandArgv(c, 2, argv_get, len_get);
    }
    for (int i = 0; i < pipeline; ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK) {
        out.error = std::string("connection: ") + c->errstr;
        break;
      }
      auto* reply = static_cast<redisReply*>(r);
      if (reply->type != REDIS_REPLY_STRING) {
        out.error = reply->type == REDIS_REPLY_ERROR ? std::string(reply->str) : "unexpected reply type for " + t.key;
      } else {
        out.reply_bytes += static_cast<int64_t>(reply->len);
        if (mode == "get-state") {
          // The user's own lookup on the fetched bytes (structure checked, checksum skipped, to
          // give the baseline every advantage).
          const linattn::MemoryView m = linattn::parse_memory(
              {reinterpret_cast<const std::byte*>(reply->str), reply->len}, nullptr, "GET reply", false);
          answer.resize(static_cast<size_t>(m.info().config.value_dim));
          m.lookup(linattn::CView2::contiguous(q, {1, dk}),
                   linattn::View2::contiguous(answer.data(), {1, m.info().config.value_dim}));
        }
      }
      freeReplyObject(reply);
      ++out.requests;
    }
    out.latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  redisFree(c);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pipelined Redis client for make bench-redis: LA.LOOKUP, GET, or GET + local lookup"};
  std::vector<std::string> targets;
  std::string mode = "lookup";
  int dk = 128, pipeline = 16, connections = 1;
  double seconds = 3;
  app.add_option("--target", targets, "PORT=KEY; connections are spread over the targets in turn")->required();
  app.add_option("--mode", mode, "lookup | get | get-state")->check(CLI::IsMember({"lookup", "get", "get-state"}));
  app.add_option("--dk", dk, "query width (lookup, get-state)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--pipeline", pipeline, "requests in flight per connection")->check(CLI::Range(1, 1 << 16));
  app.add_option("--connections", connections, "connections, one thread each")->check(CLI::Range(1, 1024));
  app.add_option("--seconds", seconds, "how long to send")->check(CLI::Range(0.1, 3600.0));
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<Target> ts;
    for (const auto& s : targets) ts.push_back(parse_target(s));
    // Query values well inside float32's range, the same every run.
    std::vector<float> q(static_cast<size_t>(dk));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f / static_cast<float>(dk));
    for (auto& x : q) x = normal(rng);
    const std::string query(reinterpret_cast<const char*>(q.data()), q.size() * 4);

    std::vector<Result> results(static_cast<size_t>(connections));
    std::vector<std::thread> threads;
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (int i = 0; i < connections; ++i)
      threads.emplace_back(run_connection, std::cref(ts[static_cast<size_t>(i) % ts.size()]), std::cref(mode),
                           std::cref(query), pipeline, end, std::ref(results[static_cast<size_t>(i)]));
    for (auto& t : threads) t.join();
    const double span = std::chrono::duration<double>(Clock::now() - t0).count();

    int64_t requests = 0, bytes = 0;
    std::vector<double> lat;
    for (const auto& r : results) {
      if (!r.error.empty()) {
        std::fprintf(stderr, "linattn_redis_client: %s\n", r.error.c_str());
        return 1;
      }
      requests += r.requests;
      bytes += r.reply_bytes;
      lat.insert(lat.end(), r.latency_us.begin(), r.latency_us.end());
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))];
    };
    const nlohmann::json j = {{"mode", mode},
                              {"connections", connections},
                              {"pipeline", pipeline},
                              {"requests", requests},
                              {"seconds", span},
                              {"requests_per_s", static_cast<double>(requests) / span},
                              {"reply_bytes", requests ? bytes / requests : 0},
                              {"p50_us", pct(0.50)},
                              {"p99_us", pct(0.99)}};
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linattn_redis_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
