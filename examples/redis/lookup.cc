// A C++ client of linattn_redis.so with hiredis: creates a memory, writes two hidden states,
// answers a query and prints the answer.
//
//   redis-server --loadmodule build/lib/linattn_redis.so &
//   ./build/bin/linattn_example_redis_lookup --port 6379
#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  int port = 6379;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--port") port = std::atoi(argv[i + 1]);
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    std::fprintf(stderr, "cannot connect to 127.0.0.1:%d: %s\n", port, c ? c->errstr : "no memory");
    return 1;
  }
  auto command = [&](std::vector<std::string> args) {
    std::vector<const char*> argv_;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv_.push_back(a.data());
      lens.push_back(a.size());
    }
    return static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv_.data(), lens.data()));
  };
  auto floats = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  const int d = 4;
  freeReplyObject(command({"DEL", "example"}));
  redisReply* r = command({"LA.CREATE", "example", "DK", std::to_string(d), "SYMMETRIC"});
  if (!r || r->type == REDIS_REPLY_ERROR) {
    std::fprintf(stderr, "LA.CREATE: %s (is linattn_redis.so loaded?)\n", r ? r->str : c->errstr);
    return 1;
  }
  freeReplyObject(r);
  // Two hidden states, rows concatenated as float32.
  r = command({"LA.WRITE", "example", "KEYS", floats({1, 0, 0, 0, 0.5f, 0.5f, 0, 0})});
  std::printf("tokens: %lld\n", r->integer);
  freeReplyObject(r);
  r = command({"LA.LOOKUP", "example", "QUERIES", floats({1, 0, 0, 0})});
  std::vector<float> answer(static_cast<size_t>(d));
  std::memcpy(answer.data(), r->str, std::min(r->len, answer.size() * sizeof(float)));
  freeReplyObject(r);
  std::printf("lookup of e1:");
  for (float x : answer) std::printf(" %g", x);
  std::printf("\n");
  redisFree(c);
  return 0;
}
