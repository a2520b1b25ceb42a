// linattn_open_loop: HTTP requests sent at a fixed rate (open loop), whatever the server's pace,
// for `make bench-serve`'s latency-against-throughput curve. wrk and h2load in Debian 12 only
// drive closed loops (a client waits for its answer before the next request), which hide the
// queueing a fixed arrival rate builds up. Each request's latency is counted from the moment it
// was due, not from when a connection was free to send it, so a server that falls behind shows
// it (no coordinated omission). Prints one JSON object.
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Args {
  int port = 0, connections = 64;
  std::string method = "POST", target = "/v1/noop", body_file, content_type = "application/x-npy", accept;
  double rate = 1000, seconds = 3;
};

class Generator {
 public:
  Generator(asio::io_context& io, const Args& a, std::string body) : io_(io), a_(a), body_(std::move(body)), timer_(io) {}

  void run() {
    tcp::resolver resolver(io_);
    const auto endpoints = resolver.resolve("127.0.0.1", std::to_string(a_.port));
    for (int i = 0; i < a_.connections; ++i) {
      auto c = std::make_unique<Conn>(io_);
      c->stream.connect(endpoints);
      c->stream.socket().set_option(tcp::no_delay(true));
      idle_.push_back(c.get());
      conns_.push_back(std::move(c));
    }
    start_ = Clock::now();
    end_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a_.seconds));
    tick();
    io_.run();
  }

  nlohmann::json report() const {
    std::vector<double> l = latencies_;
    std::sort(l.begin(), l.end());
    auto pct = [&](double p) { return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<size_t>(p * static_cast<double>(l.size())))]; };
    const double span = std::chrono::duration<double>(last_done_ - start_).count();
    return {{"rate", a_.rate},
            {"sent", issued_},
            {"completed", l.size()},
            {"errors", errors_},
            {"late", pending_.size()},
            {"achieved_rps", span > 0 ? static_cast<double>(l.size()) / span : 0.0},
            {"p50_ms", pct(0.50) * 1e3},
            {"p90_ms", pct(0.90) * 1e3},
            {"p99_ms", pct(0.99) * 1e3},
            {"max_ms", l.empty() ? 0.0 : l.back() * 1e3}};
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : stream(io) { buffer.reserve(64 * 1024); }
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    Clock::time_point due;
  };

  // Queues every request that is due by now, sends what the idle connections can take, and
  // wakes again when the next one is due.
  void tick() {
    const Clock::time_point now = Clock::now();
    const double elapsed = std::chrono::duration<double>(std::min(now, end_) - start_).count();
    const auto due_by_now = static_cast<int64_t>(elapsed * a_.rate) + 1;
    while (issued_ < due_by_now && now < end_ + std::chrono::milliseconds(1)) {
      pending_.push_back(start_ + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(static_cast<double>(issued_) / a_.rate)));
      ++issued_;
    }
    dispatch();
    if (now >= end_) {
      stopping_ = true;
      // Whatever is still queued was never sent in time: counted as "late", not as latency.
      if (idle_.size() == conns_.size()) io_.stop();
      return;
    }
    const auto next = start_ + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(issued_) / a_.rate));
    timer_.expires_at(std::min(next, end_));
    timer_.async_wait([this](beast::error_code) { tick(); });
  }

  void dispatch() {
    while (!pending_.empty() && !idle_.empty() && !stopping_) {
      Conn* c = idle_.back();
      idle_.pop_back();
      c->due = pending_.front();
      pending_.pop_front();
      c->req = {a_.method == "GET" ? http::verb::get : http::verb::post, a_.target, 11};
      c->req.set(http::field::host, "127.0.0.1");
      if (a_.method != "GET") {
        c->req.set(http::field::content_type, a_.content_type);
        c->req.body() = body_;
      }
      if (!a_.accept.empty()) c->req.set(http::field::accept, a_.accept);
      c->req.keep_alive(true);
      c->req.prepare_payload();
      http::async_write(c->stream, c->req, [this, c](beast::error_code ec, size_t) {
        if (ec) return done(c, false);
        c->res = {};
        http::async_read(c->stream, c->buffer, c->res, [this, c](beast::error_code ec2, size_t) {
          done(c, !ec2 && c->res.result_int() == 200);
        });
      });
    }
  }

  void done(Conn* c, bool ok) {
    last_done_ = Clock::now();
    if (ok) latencies_.push_back(std::chrono::duration<double>(last_done_ - c->due).count());
    else ++errors_;
    idle_.push_back(c);
    if (stopping_) {
      if (idle_.size() == conns_.size()) io_.stop();
      return;
    }
    dispatch();
  }

  asio::io_context& io_;
  Args a_;
  std::string body_;
  asio::steady_timer timer_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;
  std::deque<Clock::time_point> pending_;
  std::vector<double> latencies_;
  Clock::time_point start_, end_, last_done_;
  int64_t issued_ = 0, errors_ = 0;
  bool stopping_ = false;
};

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"linattn_open_loop: HTTP requests at a fixed rate; latency counted from when each was due"};
  app.add_option("--port", a.port, "the server's port on 127.0.0.1")->required();
  app.add_option("--target", a.target, "request target")->capture_default_str();
  app.add_option("--method", a.method, "GET or POST")->check(CLI::IsMember({"GET", "POST"}))->capture_default_str();
  app.add_option("--body-file", a.body_file, "POST body")->check(CLI::ExistingFile);
  app.add_option("--content-type", a.content_type, "the body's Content-Type")->capture_default_str();
  app.add_option("--accept", a.accept, "Accept header");
  app.add_option("--rate", a.rate, "requests per second")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seconds", a.seconds, "how long to send")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--connections", a.connections, "connections (requests in flight at most)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::string body;
  if (!a.body_file.empty()) {
    std::ifstream in(a.body_file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    body = ss.str();
  }
  try {
    asio::io_context io(1);
    Generator g(io, a, body);
    g.run();
    std::printf("%s\n", g.report().dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linattn_open_loop: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
