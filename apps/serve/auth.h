// Bearer tokens from a token file, one per line: "read <token>" or "write <token>" (a write
// token may also read); blank lines and lines starting with '#' are ignored. Tokens are 16 to
// 256 printable ASCII characters without spaces. A presented token is compared with every
// known one in constant time (SHA-256 digests compared with CRYPTO_memcmp), so the time taken
// tells nothing about how much of it matched.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linattn::serve {

enum class Access { none, read, write };

class Tokens {
 public:
  Tokens() = default;  // no token file: every request is allowed (loopback only)
  // Reads a token file; FormatError naming the file and line (never the token) otherwise.
  static Tokens load(const std::string& path);

  bool enabled() const { return !digests_.empty(); }
  // The access a token grants (none for an unknown one).
  Access check(std::string_view token) const;
  // The access an "Authorization" header value grants: "Bearer <token>".
  Access check_header(std::string_view authorization) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  std::vector<std::pair<Digest, Access>> digests_;
};

}  // namespace linattn::serve
