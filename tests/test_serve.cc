// linattn-serve as a user runs it: a process on loopback, spoken to over HTTP and gRPC. Every
// route and RPC, every error status, tokens, TLS, batching, live appends, a kill -9 during puts,
// and hundreds of concurrent connections, all against the core library's own answers.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "linattn.grpc.pb.h"
#include "linattn/linattn.h"
#include "cli_runner.h"
#include "npy.h"
#include "scratch_dir.h"
#include "serve_process.h"

namespace linattn::test {
namespace {

namespace pb = linattn::v1;
using nlohmann::json;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// A bank of symmetric memories of width d: f32 and bf16 alternately.
void make_bank(const std::string& path, int n, int64_t d, uint32_t seed = 1) {
  Bank::create(path);
  Bank bank = Bank::open(path);
  std::vector<std::pair<std::string, std::vector<std::byte>>> entries;
  for (int i = 0; i < n; ++i) {
    Memory m({.key_dim = d, .value_dim = d, .symmetric = true, .dtype = i % 2 ? DType::bf16 : DType::f32});
    const auto h = random_floats(static_cast<size_t>(16 * d), seed + static_cast<uint32_t>(i));
    m.write(CView2::contiguous(h.data(), {16, d}));
    entries.emplace_back("doc" + std::to_string(i), serialize(m));
  }
  bank.append_all(entries);
}

std::vector<float> core_lookup(const MemoryView& v, const std::vector<float>& q, LookupOptions o = {}) {
  const int64_t dk = v.info().config.key_dim, dv = v.info().config.value_dim, m = static_cast<int64_t>(q.size()) / dk;
  std::vector<float> r(static_cast<size_t>(m * dv));
  v.lookup(CView2::contiguous(q.data(), {m, dk}), View2::contiguous(r.data(), {m, dv}), o);
  return r;
}

json rows_json(const std::vector<float>& v, int64_t cols) {
  json rows = json::array();
  for (size_t i = 0; i < v.size(); i += static_cast<size_t>(cols))
    rows.push_back(std::vector<float>(v.begin() + static_cast<long>(i), v.begin() + static_cast<long>(i) + cols));
  return rows;
}

std::vector<float> flat(const json& rows) {
  std::vector<float> out;
  for (const auto& r : rows)
    for (const auto& x : r) out.push_back(x.get<float>());
  return out;
}

std::string npy_body(const std::vector<float>& v, int64_t cols) {
  const auto bytes = npy::encode(v.data(), static_cast<int64_t>(v.size()) / cols, cols);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

class Serve : public ::testing::Test {
 protected:
  Serve() : dir_("linattn_serve") {}
  std::string bank() const { return dir_("bank.lamb"); }
  std::unique_ptr<ServerProcess> start(std::vector<std::string> args) {
    auto s = std::make_unique<ServerProcess>(LINATTN_SERVE, std::move(args), dir_.path());
    EXPECT_TRUE(s->ok()) << s->log();
    return s;
  }
  std::unique_ptr<pb::Memories::Stub> stub(int port) {
    return pb::Memories::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  ScratchDir dir_;
};

TEST_F(Serve, EveryHttpRouteAnswersLikeTheCoreLibrary) {
  make_bank(bank(), 5, 16);
  auto server = start({bank()});
  ASSERT_TRUE(server->ok());
  HttpClient c(server->http_port);
  const Bank b = Bank::open(bank());

  EXPECT_EQ(c.call({.target = "/v1/health"}).json()["status"], "ready");
  const HttpReply list = c.call({.target = "/v1/memories"});
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json()["memories"].size(), 5u);
  const json info = c.call({.target = "/v1/memories/doc1"}).json();
  EXPECT_EQ(info["key_dim"], 16);
  EXPECT_EQ(info["dtype"], "bf16");
  EXPECT_EQ(info["layout"], "packed-symmetric");
  EXPECT_EQ(info["tokens"], 16);
  EXPECT_EQ(info["bytes"], kMemoryHeaderBytes + b.memory(1).info().payload_bytes);

  // Lookups, JSON and .npy, equal to the core's bit for bit (one client: no batching).
  const auto q = random_floats(3 * 16, 42);
  for (int i = 0; i < 5; ++i) {
    const std::string target = "/v1/memories/doc" + std::to_string(i) + "/lookup";
    const HttpReply r = c.call({.method = "POST", .target = target,
                                .body = json{{"queries", rows_json(q, 16)}, {"mean", true}, {"scale", 1000}}.dump()});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(flat(r.json()["results"]), core_lookup(b.memory(i), q, {.mean = true, .scale = 1000})) << i;
    const HttpReply n = c.call({.method = "POST", .target = target, .body = npy_body(q, 16),
                                .content_type = "application/x-npy", .accept = "application/x-npy"});
    ASSERT_EQ(n.status, 200);
    EXPECT_EQ(n.content_type, "application/x-npy");
    const npy::Matrix m = npy::parse(std::as_bytes(std::span<const char>(n.body.data(), n.body.size())), "reply");
    EXPECT_EQ(m.rows, 3);
    EXPECT_EQ(m.data, core_lookup(b.memory(i), q));
  }
  // Zero queries: zero results.
  EXPECT_EQ(c.call({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = R"({"queries": []})"}).json()["results"].size(), 0u);

  // Search: the bank's search, names and scores.
  const HttpReply s = c.call({.method = "POST", .target = "/v1/search", .body = json{{"queries", rows_json(q, 16)}, {"k", 3}}.dump()});
  ASSERT_EQ(s.status, 200) << s.body;
  const SearchResults expect = b.search(CView2::contiguous(q.data(), {3, 16}), {.k = 3});
  for (size_t i = 0; i < 3; ++i)
    for (size_t h = 0; h < 3; ++h) {
      EXPECT_EQ(s.json()["results"][i][h]["name"], b.name(expect.index[i * 3 + h]));
      EXPECT_EQ(s.json()["results"][i][h]["score"].get<float>(), expect.score[i * 3 + h]);
    }
  const HttpReply subset = c.call({.method = "POST", .target = "/v1/search?k=1&name=doc2&name=doc4", .body = npy_body(q, 16),
                                   .content_type = "application/x-npy"});
  ASSERT_EQ(subset.status, 200) << subset.body;
  for (const auto& hits : subset.json()["results"]) {
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_TRUE(hits[0]["name"] == "doc2" || hits[0]["name"] == "doc4");
  }

  // Put: 201, served at once, durable; the same name again is 409.
  const auto keys = random_floats(10 * 16, 7);
  const HttpReply put = c.call({.method = "PUT", .target = "/v1/memories/new%20doc", .body = json{{"keys", rows_json(keys, 16)}}.dump()});
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(put.json()["name"], "new doc");
  EXPECT_EQ(put.json()["tokens"], 10);
  const HttpReply after = c.call({.method = "POST", .target = "/v1/memories/new%20doc/lookup", .body = json{{"queries", rows_json(q, 16)}}.dump()});
  ASSERT_EQ(after.status, 200);
  const Bank b2 = Bank::open(bank());
  EXPECT_EQ(flat(after.json()["results"]), core_lookup(b2.memory(*b2.find("new doc")), q));
  EXPECT_EQ(c.call({.method = "PUT", .target = "/v1/memories/new%20doc", .body = json{{"keys", rows_json(keys, 16)}}.dump()}).status, 409);
  const auto gates = random_floats(10, 3);
  const HttpReply gated = c.call({.method = "PUT", .target = "/v1/memories/gated?parts=keys,gates&dtype=bf16",
                                  .body = npy_body(keys, 16) + npy_body(gates, 1), .content_type = "application/x-npy"});
  ASSERT_EQ(gated.status, 201) << gated.body;
  EXPECT_EQ(gated.json()["gated"], true);
  EXPECT_EQ(gated.json()["dtype"], "bf16");

  // The no-op route, and its echo for benchmarks.
  EXPECT_EQ(c.call({.method = "POST", .target = "/v1/noop", .body = "x"}).body, "{}");
  const HttpReply echo = c.call({.method = "POST", .target = "/v1/noop?echo=true", .body = npy_body(q, 16),
                                 .content_type = "application/x-npy"});
  EXPECT_EQ(echo.body, npy_body(q, 16));
  EXPECT_EQ(echo.content_type, "application/x-npy");

  // Metrics: Prometheus text with the requests just made.
  const HttpReply metrics = c.call({.target = "/metrics"});
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("linattn_requests_total{route=\"lookup\",transport=\"http\",code=\"200\"} 12"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("linattn_memories 7"), std::string::npos);
  EXPECT_NE(metrics.body.find("linattn_request_duration_seconds_bucket{route=\"search\",le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(metrics.body.find("linattn_batch_queries_count"), std::string::npos);
  EXPECT_NE(metrics.body.find("linattn_resident_bytes"), std::string::npos);
}

TEST_F(Serve, EveryHttpErrorStatusWithAOneLineJsonError) {
  make_bank(bank(), 2, 8);
  auto server = start({bank(), "--max-body-bytes", "4096"});
  ASSERT_TRUE(server->ok());
  HttpClient c(server->http_port);
  const auto q = json{{"queries", rows_json(random_floats(8, 1), 8)}}.dump();
  auto expect_error = [&](const HttpCall& call, int status, const std::string& words) -> HttpReply {
    const HttpReply r = http_call(server->http_port, call);
    EXPECT_EQ(r.status, status) << call.method << " " << call.target << ": " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
    if (!j.is_object() || !j.contains("error")) return r;
    const std::string error = j["error"].get<std::string>();
    EXPECT_NE(error.find(words), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos);
    return r;
  };
  expect_error({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = "{\"queries\": [[1,2"}, 400, "not valid JSON");
  expect_error({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = R"({"queries": [[1, 2]]})"}, 400, "key width 8");
  std::vector<float> nan(8, 1.f);
  nan[3] = std::nanf("");
  expect_error({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = npy_body(nan, 8), .content_type = "application/x-npy"},
               400, "non-finite");
  expect_error({.method = "POST", .target = "/v1/memories/nope/lookup", .body = q}, 404, "no memory named 'nope'");
  expect_error({.target = "/v1/memories/nope"}, 404, "no memory");
  // A name that is not UTF-8 is answered, not a failure of the answer's JSON (found by fuzzing).
  expect_error({.method = "POST", .target = "/v1/memories/%FF%FE/lookup", .body = q}, 404, "no memory named");
  expect_error({.target = "/v2/whatever"}, 404, "no route");
  const HttpReply m = expect_error({.method = "DELETE", .target = "/v1/memories/doc0"}, 405, "not allowed");
  EXPECT_EQ(m.headers.at("Allow"), "GET, PUT");
  expect_error({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = "1,2", .content_type = "text/csv"}, 415, "Content-Type");
  expect_error({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = std::string(5000, ' ')}, 413, "4096 bytes");
  expect_error({.method = "PUT", .target = "/v1/memories/doc1", .body = json{{"keys", rows_json(random_floats(8, 2), 8)}}.dump()}, 409,
               "exists");
  expect_error({.method = "POST", .target = "/v1/search", .body = json{{"queries", rows_json(random_floats(8, 1), 8)}, {"k", 0}}.dump()},
               400, "k must be");
  // The connection that sent a good request is still usable after others' errors.
  EXPECT_EQ(c.call({.method = "POST", .target = "/v1/memories/doc0/lookup", .body = q}).status, 200);
}

TEST_F(Serve, SoftmaxBaselineOverStoredStatesEqualsTheOperator) {
  make_bank(bank(), 1, 8);
  std::filesystem::create_directories(dir_("states"));
  const auto h = random_floats(40 * 8, 11);
  npy::save(dir_("states/article"), h.data(), 40, 8);
  std::filesystem::rename(dir_("states/article"), dir_("states/article.npy"));
  auto server = start({bank(), "--states", dir_("states")});
  ASSERT_TRUE(server->ok());
  const auto q = random_floats(3 * 8, 12);
  const HttpReply r = http_call(server->http_port, {.method = "POST", .target = "/v1/states/article/attend",
                                                    .body = json{{"queries", rows_json(q, 8)}}.dump()});
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<float> expect(3 * 8);
  softmax_attention(CView4::contiguous(q.data(), {1, 1, 3, 8}), CView4::contiguous(h.data(), {1, 1, 40, 8}),
                    CView4::contiguous(h.data(), {1, 1, 40, 8}), View4::contiguous(expect.data(), {1, 1, 3, 8}));
  EXPECT_EQ(flat(r.json()["results"]), expect);
  EXPECT_EQ(http_call(server->http_port, {.method = "POST", .target = "/v1/states/none/attend",
                                          .body = json{{"queries", rows_json(q, 8)}}.dump()}).status, 404);
}

TEST_F(Serve, RateLimitAnswers429WithRetryAfter) {
  make_bank(bank(), 1, 8);
  auto server = start({bank(), "--max-rps", "2"});
  ASSERT_TRUE(server->ok());
  HttpClient c(server->http_port);
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    const HttpReply r = c.call({.target = "/v1/memories"});
    if (r.status == 429) {
      ++refused;
      EXPECT_EQ(r.headers.at("Retry-After"), "1");
    }
  }
  EXPECT_GE(refused, 3);
  EXPECT_EQ(c.call({.target = "/v1/health"}).status, 200);  // probes are never limited
}

TEST_F(Serve, ConnectionsPastTheLimitAreClosed) {
  make_bank(bank(), 1, 8);
  auto server = start({bank(), "--max-connections", "2"});
  ASSERT_TRUE(server->ok());
  HttpClient a(server->http_port), b(server->http_port);
  EXPECT_EQ(a.call({.target = "/v1/health"}).status, 200);
  EXPECT_EQ(b.call({.target = "/v1/health"}).status, 200);
  EXPECT_ANY_THROW(http_call(server->http_port, {.target = "/v1/health"}));  // a third: closed at once
  EXPECT_EQ(a.call({.target = "/v1/health"}).status, 200);                  // the first two still answer
}

TEST_F(Serve, TokensGuardEveryRouteButHealthAndNeverEchoed) {
  make_bank(bank(), 1, 8);
  {
    std::ofstream f(dir_("tokens"));
    f << "read reader-0123456789abcdef\nwrite writer-0123456789abcdef\n";
  }
  auto server = start({bank(), "--token-file", dir_("tokens")});
  ASSERT_TRUE(server->ok());
  const int port = server->http_port;
  EXPECT_EQ(http_call(port, {.target = "/v1/health"}).status, 200);
  const HttpReply none = http_call(port, {.target = "/v1/memories"});
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.headers.at("WWW-Authenticate"), "Bearer");
  const HttpReply wrong = http_call(port, {.target = "/v1/memories", .token = "guess-0123456789abcdef"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body.find("guess"), std::string::npos);
  EXPECT_EQ(http_call(port, {.target = "/metrics"}).status, 401);
  EXPECT_EQ(http_call(port, {.target = "/v1/memories", .token = "reader-0123456789abcdef"}).status, 200);
  const std::string keys = json{{"keys", rows_json(random_floats(16, 1), 8)}}.dump();
  EXPECT_EQ(http_call(port, {.method = "PUT", .target = "/v1/memories/x", .body = keys, .token = "reader-0123456789abcdef"}).status, 403);
  EXPECT_EQ(http_call(port, {.method = "PUT", .target = "/v1/memories/x", .body = keys, .token = "writer-0123456789abcdef"}).status, 201);

  auto s = stub(server->grpc_port);
  pb::ListResponse list;
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(s->List(&ctx, {}, &list).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer reader-0123456789abcdef");
    EXPECT_TRUE(s->List(&ctx, {}, &list).ok());
    EXPECT_EQ(list.memories_size(), 2);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer reader-0123456789abcdef");
    pb::PutRequest put;
    put.set_name("y");
    put.mutable_keys()->set_rows(1);
    put.mutable_keys()->set_cols(8);
    for (int i = 0; i < 8; ++i) put.mutable_keys()->add_values(1.f);
    pb::PutResponse out;
    EXPECT_EQ(s->Put(&ctx, put, &out).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(Serve, VerifyChecksEveryMemorysChecksumAtStart) {
  make_bank(bank(), 2, 8);
  // One bit of the first memory's stored numbers flipped: its record header and structure stay
  // valid, only the memory's own checksum can tell.
  {
    std::fstream f(bank(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(400);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 1);
    f.seekp(400);
    f.write(&c, 1);
  }
  {
    ServerProcess plain(LINATTN_SERVE, {bank()}, dir_.path());
    EXPECT_TRUE(plain.ok()) << plain.log();  // without --verify, the bank's pages are not read at start
  }
  ServerProcess verified(LINATTN_SERVE, {bank(), "--verify"}, dir_.path());
  EXPECT_FALSE(verified.ok());
  EXPECT_EQ(verified.exit_code(), 1);
  EXPECT_NE(verified.log().find("bank entry 0"), std::string::npos) << verified.log();
}

TEST_F(Serve, RefusesToListenBeyondLoopbackWithoutTokens) {
  make_bank(bank(), 1, 8);
  ServerProcess s(LINATTN_SERVE, {bank(), "--http", "0.0.0.0:0"}, dir_.path());
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_NE(s.log().find("--token-file"), std::string::npos) << s.log();
}

TEST_F(Serve, TlsOnBothFrontEnds) {
  make_bank(bank(), 2, 8);
  const std::string cert = dir_("cert.pem"), key = dir_("key.pem");
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 -keyout " +
                          key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl req failed";
  auto server = start({bank(), "--tls-cert", cert, "--tls-key", key});
  ASSERT_TRUE(server->ok());

  namespace ssl = boost::asio::ssl;
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(cert);
  ctx.set_verify_mode(ssl::verify_peer);
  boost::beast::ssl_stream<boost::beast::tcp_stream> stream(io, ctx);
  stream.set_verify_callback(ssl::host_name_verification("localhost"));
  boost::asio::ip::tcp::resolver resolver(io);
  boost::beast::get_lowest_layer(stream).connect(resolver.resolve("127.0.0.1", std::to_string(server->http_port)));
  stream.handshake(ssl::stream_base::client);
  http::request<http::string_body> req{http::verb::get, "/v1/memories", 11};
  req.set(http::field::host, "localhost");
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(json::parse(res.body())["memories"].size(), 2u);
  // Plain HTTP to the TLS port gets no answer.
  EXPECT_ANY_THROW(http_call(server->http_port, {.target = "/v1/memories"}));

  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = slurp(cert);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server->grpc_port), grpc::SslCredentials(opts), args);
  auto s = pb::Memories::NewStub(channel);
  grpc::ClientContext gctx;
  pb::ListResponse list;
  ASSERT_TRUE(s->List(&gctx, {}, &list).ok());
  EXPECT_EQ(list.memories_size(), 2);
}

TEST_F(Serve, EveryRpcAndItsStatusCodes) {
  make_bank(bank(), 3, 8);
  auto server = start({bank(), "--max-body-bytes", "100000"});
  ASSERT_TRUE(server->ok());
  auto s = stub(server->grpc_port);
  const Bank b = Bank::open(bank());
  {
    grpc::ClientContext ctx;
    pb::HealthResponse h;
    ASSERT_TRUE(s->Health(&ctx, {}, &h).ok());
    EXPECT_TRUE(h.ready());
  }
  {
    grpc::ClientContext ctx;
    pb::InfoRequest req;
    req.set_name("doc2");
    pb::MemoryInfo info;
    ASSERT_TRUE(s->Info(&ctx, req, &info).ok());
    EXPECT_EQ(info.tokens(), 16);
    EXPECT_EQ(info.layout(), "packed-symmetric");
    grpc::ClientContext ctx2;
    req.set_name("nope");
    EXPECT_EQ(s->Info(&ctx2, req, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  const auto q = random_floats(2 * 8, 5);
  for (const bool packed_bytes : {true, false}) {
    grpc::ClientContext ctx;
    pb::LookupRequest req;
    req.set_name("doc1");
    req.mutable_queries()->set_rows(2);
    req.mutable_queries()->set_cols(8);
    if (packed_bytes)
      req.mutable_queries()->set_data(q.data(), q.size() * 4);
    else
      req.mutable_queries()->mutable_values()->Add(q.begin(), q.end());
    req.set_values_out(!packed_bytes);
    req.set_scale(2.f);
    pb::LookupResponse res;
    ASSERT_TRUE(s->Lookup(&ctx, req, &res).ok());
    std::vector<float> got(res.results().values().begin(), res.results().values().end());
    if (packed_bytes) {
      got.resize(16);
      ASSERT_EQ(res.results().data().size(), 16 * 4u);
      std::memcpy(got.data(), res.results().data().data(), 64);
    }
    EXPECT_EQ(got, core_lookup(b.memory(1), q, {.scale = 2.f}));
  }
  auto lookup_code = [&](pb::LookupRequest req, std::chrono::milliseconds deadline = std::chrono::milliseconds(10000)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    pb::LookupResponse res;
    return s->Lookup(&ctx, req, &res).error_code();
  };
  pb::LookupRequest bad;
  bad.set_name("doc0");
  bad.mutable_queries()->set_rows(1);
  bad.mutable_queries()->set_cols(8);
  bad.mutable_queries()->set_data(std::string(31, '\0'));
  EXPECT_EQ(lookup_code(bad), grpc::StatusCode::INVALID_ARGUMENT);  // 31 bytes for 8 floats
  bad.mutable_queries()->set_cols(4);
  bad.mutable_queries()->set_data(std::string(16, '\0'));
  EXPECT_EQ(lookup_code(bad), grpc::StatusCode::INVALID_ARGUMENT);  // width 4 for dk 8
  bad.set_name("nope");
  EXPECT_EQ(lookup_code(bad), grpc::StatusCode::NOT_FOUND);
  bad.set_name("doc0");
  bad.mutable_queries()->set_rows(4000);
  bad.mutable_queries()->set_cols(8);
  bad.mutable_queries()->set_data(std::string(4000 * 32, '\0'));
  EXPECT_EQ(lookup_code(bad), grpc::StatusCode::RESOURCE_EXHAUSTED);  // over --max-body-bytes
  {
    grpc::ClientContext ctx;
    pb::SearchRequest req;
    req.mutable_queries()->set_rows(2);
    req.mutable_queries()->set_cols(8);
    req.mutable_queries()->set_data(q.data(), q.size() * 4);
    req.set_k(2);
    pb::SearchResponse res;
    ASSERT_TRUE(s->Search(&ctx, req, &res).ok());
    const SearchResults expect = b.search(CView2::contiguous(q.data(), {2, 8}), {.k = 2});
    ASSERT_EQ(res.results_size(), 2);
    for (int i = 0; i < 2; ++i)
      for (int h = 0; h < 2; ++h) {
        EXPECT_EQ(res.results(i).hits(h).name(), b.name(expect.index[static_cast<size_t>(i * 2 + h)]));
        EXPECT_EQ(res.results(i).hits(h).score(), expect.score[static_cast<size_t>(i * 2 + h)]);
      }
    grpc::ClientContext ctx2;
    req.set_score("cosine");
    EXPECT_EQ(s->Search(&ctx2, req, &res).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    pb::PutRequest put;
    put.set_name("g1");
    put.mutable_keys()->set_rows(2);
    put.mutable_keys()->set_cols(8);
    put.mutable_keys()->set_data(q.data(), q.size() * 4);
    pb::PutResponse out;
    grpc::ClientContext ctx;
    ASSERT_TRUE(s->Put(&ctx, put, &out).ok());
    EXPECT_EQ(out.memory().tokens(), 2);
    grpc::ClientContext ctx2;
    EXPECT_EQ(s->Put(&ctx2, put, &out).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }
}

TEST_F(Serve, DeadlinesAreHonouredWhileQueued) {
  make_bank(bank(), 1, 8);
  // One batch thread that waits 2 s for a batch to fill: a call with a 100 ms deadline ends first.
  auto server = start({bank(), "--threads", "1", "--max-queue-delay-us", "1000000", "--max-batch", "1000"});
  ASSERT_TRUE(server->ok());
  auto s = stub(server->grpc_port);
  pb::LookupRequest req;
  req.set_name("doc0");
  req.mutable_queries()->set_rows(1);
  req.mutable_queries()->set_cols(8);
  for (int i = 0; i < 8; ++i) req.mutable_queries()->add_values(1.f);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  pb::LookupResponse res;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s->Lookup(&ctx, req, &res).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
}

TEST_F(Serve, HundredsOfConcurrentConnectionsGetTheirOwnAnswersBatched) {
  make_bank(bank(), 4, 32);
  auto server = start({bank(), "--max-queue-delay-us", "2000"});
  ASSERT_TRUE(server->ok());
  const Bank b = Bank::open(bank());
  constexpr int kClients = 200, kCalls = 5;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      try {
        HttpClient http(server->http_port);
        for (int i = 0; i < kCalls; ++i) {
          const int mem = (c + i) % 4;
          const auto q = random_floats(32, static_cast<uint32_t>(c * 100 + i));
          const HttpReply r = http.call({.method = "POST", .target = "/v1/memories/doc" + std::to_string(mem) + "/lookup",
                                         .body = npy_body(q, 32), .content_type = "application/x-npy"});
          if (r.status != 200) {
            ++failed;
            continue;
          }
          const auto got = flat(r.json()["results"]), expect = core_lookup(b.memory(mem), q);
          for (size_t j = 0; j < expect.size(); ++j)
            if (std::fabs(got[j] - expect[j]) > 1e-5f * (1 + std::fabs(expect[j]))) {
              ++wrong;
              break;
            }
        }
      } catch (const std::exception&) {
        ++failed;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(wrong, 0);
  const std::string metrics = http_call(server->http_port, {.target = "/metrics"}).body;
  const size_t at = metrics.find("linattn_batch_requests_count ");
  ASSERT_NE(at, std::string::npos);
  const int batches = std::stoi(metrics.substr(at + 29));
  EXPECT_LT(batches, kClients * kCalls) << "no two requests were batched";
  std::printf("%d lookups in %d batches\n", kClients * kCalls, batches);
}

TEST_F(Serve, ServesAnotherProcesssAppendWithinASecond) {
  make_bank(bank(), 1, 8);
  auto server = start({bank()});
  ASSERT_TRUE(server->ok());
  Memory m({.key_dim = 8, .value_dim = 8, .symmetric = true});
  const auto h = random_floats(32, 9);
  m.write(CView2::contiguous(h.data(), {4, 8}));
  save_memory(m, dir_("late.lam"));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(std::system((std::string(LINATTN_CLI) + " bank append " + bank() + " late " + dir_("late.lam")).c_str()), 0);
  HttpClient c(server->http_port);
  int status = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    status = c.call({.target = "/v1/memories/late"}).status;
    if (status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(status, 200);
  EXPECT_LT(seconds, 1.5);
  std::printf("served %.3f s after the append began\n", seconds);
}

TEST_F(Serve, KillDuringPutsLeavesTheBankIntactWithEveryAcknowledgedPut) {
  make_bank(bank(), 1, 8);
  auto server = start({bank()});
  ASSERT_TRUE(server->ok());
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    try {
      HttpClient c(server->http_port);
      for (int i = 0; !stop; ++i) {
        const std::string name = "put" + std::to_string(i);
        const std::string body = json{{"keys", rows_json(random_floats(64, static_cast<uint32_t>(i)), 8)}}.dump();
        if (c.call({.method = "PUT", .target = "/v1/memories/" + name, .body = body}).status == 201)
          acknowledged.push_back(name);
      }
    } catch (const std::exception&) {
      // the server died mid-call
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  server->stop(SIGKILL);
  stop = true;
  writer.join();
  ASSERT_GT(acknowledged.size(), 0u);
  const Bank b = Bank::open(bank(), true);  // every checksum
  for (const std::string& name : acknowledged) EXPECT_TRUE(b.find(name).has_value()) << name;
  std::printf("%zu puts acknowledged before kill -9; the bank holds %lld memories\n", acknowledged.size(),
              static_cast<long long>(b.size()));
  // The next server (and the next append) starts from it.
  auto again = start({bank()});
  ASSERT_TRUE(again->ok());
  EXPECT_EQ(http_call(again->http_port, {.method = "PUT", .target = "/v1/memories/after",
                                         .body = json{{"keys", rows_json(random_floats(8, 1), 8)}}.dump()})
                .status,
            201);
}

TEST_F(Serve, SigtermFinishesRequestsInFlightAndExitsZero) {
  make_bank(bank(), 2, 8);
  auto server = start({bank(), "--max-queue-delay-us", "300000", "--max-batch", "1000"});
  ASSERT_TRUE(server->ok());
  // A lookup waiting out its batch delay when SIGTERM arrives is still answered.
  HttpReply reply;
  std::thread client([&] {
    try {
      reply = http_call(server->http_port, {.method = "POST", .target = "/v1/memories/doc0/lookup",
                                            .body = json{{"queries", rows_json(random_floats(8, 1), 8)}}.dump()});
    } catch (const std::exception& e) {
      reply.body = e.what();
    }
  });
  // SIGTERM once the request is queued (the server has read it), not merely sent.
  HttpClient probe(server->http_port);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (probe.call({.target = "/metrics"}).body.find("linattn_queue_depth 1") == std::string::npos &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
  client.join();
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_NE(server->log().find("stopped"), std::string::npos);
}

TEST_F(Serve, TheGrpcExampleClientRuns) {
  make_bank(bank(), 3, 8);
  auto server = start({bank()});
  ASSERT_TRUE(server->ok());
  const CliRun r = run_program(LINATTN_EXAMPLE_GRPC, "--address 127.0.0.1:" + std::to_string(server->grpc_port) +
                                                         " --memory doc1", dir_.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("doc1: 8 x 8, bf16, 16 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lookup:"), std::string::npos);
  EXPECT_NE(r.out.find("search: doc"), std::string::npos) << r.out;
}

TEST_F(Serve, LinattnServeRunsTheServerAndAUnknownBankIsAnError) {
  ServerProcess s(LINATTN_CLI, {"serve", dir_("missing.lamb")}, dir_.path());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.exit_code().value_or(0), 0);
  EXPECT_NE(s.log().find("missing.lamb"), std::string::npos) << s.log();
  make_bank(bank(), 1, 8);
  ServerProcess ok(LINATTN_CLI, {"serve", bank()}, dir_.path());
  ASSERT_TRUE(ok.ok()) << ok.log();
  EXPECT_EQ(http_call(ok.http_port, {.target = "/v1/health"}).status, 200);
}

}  // namespace
}  // namespace linattn::test
