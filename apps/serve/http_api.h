// The HTTP API of the lookup service (docs/serve.md), apart from the sockets: routing,
// authentication, body decoding (JSON and application/x-npy) and answers. http_server.h moves
// requests and answers over the network; the fuzz target feeds the decoders directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth.h"
#include "service.h"

namespace linattn::serve {

struct HttpRequest {
  std::string method;         // "GET", "POST", "PUT", ...
  std::string target;         // path and query string, percent-encoded
  std::string content_type;   // empty when absent
  std::string accept;
  std::string authorization;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

// The request bodies' decoders: ServiceError (invalid_argument, unsupported_media) naming the
// problem otherwise. `query` is the target's query string (after '?', still encoded).
LookupCall decode_lookup(std::string_view content_type, std::string_view query, std::string_view body);
SearchCall decode_search(std::string_view content_type, std::string_view query, std::string_view body);
PutCall decode_put(std::string_view content_type, std::string_view query, std::string_view body);

// A path segment or query value with its %XX escapes (and '+' in queries) decoded; ServiceError
// on a malformed escape or a NUL.
std::string percent_decode(std::string_view s, bool plus_is_space);

// {"results": [[...], ...]} with every float written in its shortest form that reads back exactly.
std::string results_json(const npy::Matrix& results);

class HttpApi {
 public:
  HttpApi(Service& service, const Tokens& tokens) : service_(service), tokens_(tokens) {}
  // Answers `request`: `respond` is called exactly once, maybe before handle() returns, maybe
  // on another thread.
  void handle(HttpRequest request, std::function<void(HttpResponse)> respond);

 private:
  Service& service_;
  const Tokens& tokens_;
};

HttpResponse error_response(const Status& status);

}  // namespace linattn::serve
