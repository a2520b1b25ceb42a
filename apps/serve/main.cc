// linattn-serve: memories in banks answered over HTTP and gRPC (docs/serve.md). Also run as
// `linattn serve`.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../common/run_app.h"
#include "grpc_server.h"
#include "http_server.h"
#include "linattn/core/error.h"
#include "linattn/core/file_io.h"

namespace linattn::serve {
namespace {

struct Args {
  std::vector<std::string> banks;
  std::string http = "127.0.0.1:8080", grpc = "127.0.0.1:50051";
  std::string token_file, tls_cert, tls_key, ready_file, states;
  int64_t max_batch = 256, max_queue_delay_us = 0, max_queue = 4096, max_body_bytes = 64 << 20;
  int64_t max_connections = 4096;
  int threads = 0, kernel_threads = 1;
  double max_rps = 0;
  bool verify = false;
};

struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:8080", "[::1]:8080", "localhost:0" (a free port).
Endpoint parse_endpoint(const std::string& option, const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw Error(option + " " + text + ": expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080, localhost:0)");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw Error(option + " " + text + ": the port must be 0 to 65535");
  return {host, static_cast<uint16_t>(port)};
}

bool is_loopback(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1";
}

std::string with_port(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void run(const Args& a) {
  // SIGTERM and SIGINT are taken by this thread alone (sigwait below): every thread started
  // from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const bool http_on = a.http != "off", grpc_on = a.grpc != "off";
  if (!http_on && !grpc_on) throw Error("--http off and --grpc off: nothing would answer");
  const std::optional<Endpoint> http_at = http_on ? std::optional(parse_endpoint("--http", a.http)) : std::nullopt;
  const std::optional<Endpoint> grpc_at = grpc_on ? std::optional(parse_endpoint("--grpc", a.grpc)) : std::nullopt;
  for (const auto& [opt, at] : {std::pair{"--http", http_at}, std::pair{"--grpc", grpc_at}})
    if (at && !is_loopback(at->host) && a.token_file.empty())
      throw Error(std::string(opt) + " " + at->host +
                  " listens beyond this machine: give --token-file (a server off loopback needs tokens)");
  if (a.tls_cert.empty() != a.tls_key.empty()) throw Error("--tls-cert and --tls-key go together");
  std::optional<TlsFiles> tls;
  if (!a.tls_cert.empty()) tls = TlsFiles{a.tls_cert, a.tls_key};

  const Tokens tokens = a.token_file.empty() ? Tokens() : Tokens::load(a.token_file);
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  Service::Options so;
  so.limits = {.max_batch = a.max_batch,
               .max_delay = std::chrono::microseconds(a.max_queue_delay_us),
               .max_queue = a.max_queue,
               .executors = threads};
  so.verify = a.verify;
  so.max_rps = a.max_rps;
  so.kernel_threads = a.kernel_threads;
  so.states_dir = a.states;
  Service service(a.banks, so);
  HttpApi api(service, tokens);

  boost::asio::io_context io(threads);
  std::unique_ptr<HttpServer> http;
  if (http_at)
    http = std::make_unique<HttpServer>(io, api,
                                        HttpServerOptions{.host = http_at->host,
                                                          .port = http_at->port,
                                                          .max_body_bytes = a.max_body_bytes,
                                                          .max_connections = a.max_connections,
                                                          .tls = tls});
  std::unique_ptr<GrpcServer> grpc;
  if (grpc_at)
    grpc = std::make_unique<GrpcServer>(service, tokens,
                                        GrpcServerOptions{.address = with_port(grpc_at->host, grpc_at->port),
                                                          .max_message_bytes = a.max_body_bytes,
                                                          .tls = tls});
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&io] { io.run(); });

  const auto memories = service.list().size();
  std::string where;
  if (http) where += std::string(tls ? "HTTPS" : "HTTP") + " on " + with_port(http_at->host, http->port());
  if (grpc) where += std::string(where.empty() ? "" : ", ") + "gRPC on " + with_port(grpc_at->host, grpc->port());
  std::fprintf(stderr, "linattn serve: %zu memories from %zu bank(s)%s; %s; %d threads%s\n", memories, a.banks.size(),
               service.state_documents() ? (", " + std::to_string(service.state_documents()) + " documents' states").c_str() : "",
               where.c_str(), threads, tokens.enabled() ? "; tokens required" : "");
  if (!a.ready_file.empty()) {
    const nlohmann::json j = {{"http", http ? http->port() : 0}, {"grpc", grpc ? grpc->port() : 0}, {"pid", ::getpid()}};
    const std::string text = j.dump() + "\n";
    write_file_atomic(a.ready_file, std::as_bytes(std::span<const char>(text.data(), text.size())));
  }

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "linattn serve: %s: finishing the requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (http) http->stop_accepting();
  service.drain();
  if (grpc) grpc->shutdown(10);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (http && http->in_flight() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  io.stop();
  for (auto& t : pool) t.join();
  std::fprintf(stderr, "linattn serve: stopped\n");
}

}  // namespace
}  // namespace linattn::serve

int main(int argc, char** argv) {
  using linattn::apps::positive;
  auto a = std::make_shared<linattn::serve::Args>();
  CLI::App app{"linattn-serve: fixed-size memories answered over HTTP and gRPC (docs/serve.md)"};
  app.set_version_flag("--version", "linattn-serve 0.1.0");
  app.add_option("banks", a->banks, "bank files to serve (linattn bank create/append); memories are addressed by name")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--http", a->http, "HTTP address:port, or off (port 0: any free port)")->capture_default_str();
  app.add_option("--grpc", a->grpc, "gRPC address:port, or off")->capture_default_str();
  app.add_option("--token-file", a->token_file, "bearer tokens, lines 'read <token>' or 'write <token>'; needed off loopback")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", a->tls_cert, "PEM certificate (chain): TLS on both front ends")->check(CLI::ExistingFile);
  app.add_option("--tls-key", a->tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  app.add_option("--max-batch", a->max_batch, "queries per batched kernel call")->capture_default_str()->check(positive());
  app.add_option("--max-queue-delay-us", a->max_queue_delay_us,
                 "wait up to this long for a batch to fill (0: batch only what is already queued)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  app.add_option("--max-queue", a->max_queue, "requests waiting for a batch; more are refused with 429")
      ->capture_default_str()
      ->check(positive());
  app.add_option("--threads", a->threads, "network and batch threads (default: the number of cores)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--kernel-threads", a->kernel_threads, "threads inside one kernel call")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-body-bytes", a->max_body_bytes, "largest request body or gRPC message; larger: 413")
      ->capture_default_str()
      ->check(positive());
  app.add_option("--max-connections", a->max_connections, "open HTTP connections; more are closed")
      ->capture_default_str()
      ->check(positive());
  app.add_option("--max-rps", a->max_rps, "requests per second over all clients (0: no limit); more get 429")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--verify", a->verify, "check every memory's checksum at start (reads every byte of the banks)");
  app.add_option("--states", a->states,
                 "a directory of NAME.npy hidden states [T, d]: softmax attention over them at "
                 "POST /v1/states/NAME/attend (the baseline without fixed-size memories)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--ready-file", a->ready_file, "write {\"http\": port, \"grpc\": port, \"pid\": pid} here once listening");
  app.callback([a] { linattn::serve::run(*a); });
  return linattn::apps::run_app(app, argc, argv, "linattn serve");
}
