// The outcome of a service call, independent of the transport: each code maps to one HTTP status
// and one gRPC status code (docs/serve.md has the table).
#pragma once

#include <stdexcept>
#include <string>

namespace linattn::serve {

enum class Code {
  ok,
  invalid_argument,    // 400 / INVALID_ARGUMENT
  unauthenticated,     // 401 / UNAUTHENTICATED
  permission_denied,   // 403 / PERMISSION_DENIED
  not_found,           // 404 / NOT_FOUND
  already_exists,      // 409 / ALREADY_EXISTS
  too_large,           // 413 / RESOURCE_EXHAUSTED
  unsupported_media,   // 415 / INVALID_ARGUMENT
  overloaded,          // 429 + Retry-After / RESOURCE_EXHAUSTED
  deadline_exceeded,   // 504 / DEADLINE_EXCEEDED
  unavailable,         // 503 / UNAVAILABLE
  internal,            // 500 / INTERNAL
};

struct Status {
  Code code = Code::ok;
  std::string message;  // one line; never a token or other secret
  bool ok() const { return code == Code::ok; }
};

// The HTTP status a code answers with (gRPC calls are counted under it in the metrics too).
inline int http_status(Code code) {
  switch (code) {
    case Code::ok: return 200;
    case Code::invalid_argument: return 400;
    case Code::unauthenticated: return 401;
    case Code::permission_denied: return 403;
    case Code::not_found: return 404;
    case Code::already_exists: return 409;
    case Code::too_large: return 413;
    case Code::unsupported_media: return 415;
    case Code::overloaded: return 429;
    case Code::deadline_exceeded: return 504;
    case Code::unavailable: return 503;
    case Code::internal: return 500;
  }
  return 500;
}

// Thrown by the synchronous parts of a call (decoding, checks) and turned into its Status.
class ServiceError : public std::runtime_error {
 public:
  ServiceError(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Code code() const { return code_; }
  Status status() const { return {code_, what()}; }

 private:
  Code code_;
};

}  // namespace linattn::serve
