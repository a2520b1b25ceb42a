// libFuzzer target: an HTTP request to the lookup service, from the decoded request on (the
// bytes after Beast's parser): routing, the JSON and .npy body decoders and the service's checks,
// against a small bank of its own. Input: byte 0 chooses the method and Content-Type, then the
// target up to the first '\n', then the body. PUT bodies are decoded but never appended.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "http_api.h"
#include "linattn/linattn.h"

namespace {

using namespace linattn;

struct World {
  std::string dir;
  std::unique_ptr<serve::Service> service;
  serve::Tokens tokens;
  std::unique_ptr<serve::HttpApi> api;
};

World& world() {
  static World* w = [] {
    auto* x = new World;
    x->dir = (std::filesystem::temp_directory_path() / ("fuzz_http_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(x->dir);
    const std::string bank = x->dir + "/bank.lamb";
    Bank::create(bank);
    Bank b = Bank::open(bank);
    for (int i = 0; i < 3; ++i) {
      Memory m({.key_dim = 4, .value_dim = 4, .symmetric = i != 2, .dtype = i == 1 ? DType::bf16 : DType::f32});
      const float h[8] = {1, 2, 3, 4, -1, 0.5f, 0, 2};
      m.write(CView2::contiguous(h, {2, 4}), i == 2 ? CView2::contiguous(h, {2, 4}) : CView2{});
      b.append("m" + std::to_string(i), m);
    }
    x->service = std::make_unique<serve::Service>(std::vector<std::string>{bank}, serve::Service::Options{});
    x->api = std::make_unique<serve::HttpApi>(*x->service, x->tokens);
    return x;
  }();
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = world();
  const uint8_t mode = data[0];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nl = rest.find('\n');
  const std::string target = nl == std::string::npos ? rest : rest.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : rest.substr(nl + 1);
  static const char* const kTypes[] = {"application/json", "application/x-npy", "", "text/plain"};
  const std::string type = kTypes[(mode >> 2) & 3];
  const std::string query = target.substr(std::min(target.find('?'), target.size()) + (target.find('?') != std::string::npos));

  if (mode & 0x80) {
    // The PUT decoder alone (the route would append to the bank).
    try {
      (void)serve::decode_put(type, query, body);
    } catch (const serve::ServiceError&) {
    }
    return 0;
  }
  serve::HttpRequest req;
  req.method = (mode & 3) == 0 ? "GET" : (mode & 3) == 1 ? "POST" : (mode & 3) == 2 ? "DELETE" : "HEAD";
  req.target = target;
  req.content_type = type;
  req.body = body;
  bool answered = false;
  w.api->handle(std::move(req), [&](serve::HttpResponse r) {
    answered = true;
    // Every answer is a status with a body (JSON for errors).
    if (r.status < 200 || r.status > 599) __builtin_trap();
  });
  if (!answered) __builtin_trap();  // no delay is configured: every answer comes before handle returns
  return 0;
}
