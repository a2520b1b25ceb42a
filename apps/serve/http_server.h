// HTTP/1.1 over TCP (and TLS), with Boost.Beast on Asio: one connection per strand, any number
// of connections on the io_context's threads, requests handed to HttpApi and answered when it
// responds (possibly from the thread that ran their batch).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "http_api.h"

namespace boost::asio {
class io_context;
}

namespace linattn::serve {

struct TlsFiles {
  std::string cert, key;  // PEM
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                      // 0: any free port (see HttpServer::port)
  int64_t max_body_bytes = 64 << 20;      // larger bodies: 413
  int64_t max_connections = 4096;         // more are closed at once
  int idle_timeout_seconds = 60;          // a connection silent this long is closed
  std::optional<TlsFiles> tls;
};

class HttpServer {
 public:
  // Binds and starts accepting on `io`; throws Error (address in use, bad certificate, ...).
  HttpServer(boost::asio::io_context& io, HttpApi& api, const HttpServerOptions& options);
  ~HttpServer();
  uint16_t port() const;
  // Stops accepting; open connections close after their current request.
  void stop_accepting();
  // Requests read and not yet answered (a drain waits for 0).
  int64_t in_flight() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace linattn::serve
