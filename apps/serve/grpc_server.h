// The gRPC front end (proto/linattn.proto): gRPC's callback API, so a Lookup or Search waiting
// for its batch holds no thread; the same Service, tokens and limits as HTTP.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "auth.h"
#include "http_server.h"  // TlsFiles
#include "service.h"

namespace linattn::serve {

struct GrpcServerOptions {
  std::string address = "127.0.0.1:0";  // host:port; port 0 picks a free one
  int64_t max_message_bytes = 64 << 20;
  std::optional<TlsFiles> tls;
};

class GrpcServer {
 public:
  GrpcServer(Service& service, const Tokens& tokens, const GrpcServerOptions& options);
  ~GrpcServer();
  int port() const;
  // Stops taking calls, waits up to `seconds` for those running, then cancels the rest.
  void shutdown(double seconds);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace linattn::serve
