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
