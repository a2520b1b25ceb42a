#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>

#include "linattn/core/error.h"

namespace linattn::serve {
namespace {

std::array<unsigned char, 32> digest_of(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

bool valid_token(std::string_view t) {
  if (t.size() < 16 || t.size() > 256) return false;
  for (const char c : t)
    if (c <= ' ' || c > '~') return false;
  return true;
}

}  // namespace

Tokens Tokens::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw FormatError("cannot read the token file '" + path + "'");
  Tokens t;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const size_t space = line.find_first_of(" \t", first);
    const std::string kind = line.substr(first, space == std::string::npos ? std::string::npos : space - first);
    const size_t start = space == std::string::npos ? std::string::npos : line.find_first_not_of(" \t", space);
    const size_t end = line.find_last_not_of(" \t");
    const std::string token = start == std::string::npos ? "" : line.substr(start, end + 1 - start);
    const std::string where = path + " line " + std::to_string(n);
    if (kind != "read" && kind != "write")
      throw FormatError(where + ": expected 'read <token>' or 'write <token>'");
    if (!valid_token(token))
      throw FormatError(where + ": a token is 16 to 256 printable ASCII characters without spaces");
    t.digests_.emplace_back(digest_of(token), kind == "write" ? Access::write : Access::read);
  }
  if (t.digests_.empty()) throw FormatError("the token file '" + path + "' has no token");
  return t;
}

Access Tokens::check(std::string_view token) const {
  const auto d = digest_of(token);
  Access granted = Access::none;
  for (const auto& [known, access] : digests_)  // no early exit: every token is compared
    if (CRYPTO_memcmp(known.data(), d.data(), d.size()) == 0 && access > granted) granted = access;
  return granted;
}

Access Tokens::check_header(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer)
    return Access::none;
  return check(authorization.substr(kBearer.size()));
}

}  // namespace linattn::serve
