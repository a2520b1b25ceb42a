// The lookup service's parts without sockets: the batching scheduler, the HTTP API's decoders,
// the token file, and the Service against the core library's results.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "auth.h"
#include "http_api.h"
#include "linattn/linattn.h"
#include "scheduler.h"
#include "scratch_dir.h"
#include "service.h"

namespace linattn::serve {
namespace {

using test::ScratchDir;

// A job recording the batches it was run in.
struct RecordingJob final : Scheduler::Job {
  std::atomic<int>* batches = nullptr;
  std::vector<int64_t>* sizes = nullptr;
  std::mutex* mutex = nullptr;
  std::promise<Status> outcome;
  void run(std::span<std::unique_ptr<Scheduler::Job>> batch) override {
    {
      std::lock_guard lock(*mutex);
      int64_t total = 0;
      for (auto& j : batch) total += j->rows;
      sizes->push_back(total);
    }
    ++*batches;
    for (auto& j : batch) static_cast<RecordingJob&>(*j).outcome.set_value({});
  }
  void fail(const Status& s) override { outcome.set_value(s); }
};

// Makes jobs that record the batches they ran in.
struct Recorder {
  std::atomic<int> batches{0};
  std::vector<int64_t> sizes;
  std::mutex mutex;
  std::vector<std::future<Status>> outcomes;  // of the jobs made by tracked()
  // A job whose outcome is kept in `outcomes`.
  std::unique_ptr<RecordingJob> tracked(const std::string& key) {
    auto j = job(key);
    outcomes.push_back(j->outcome.get_future());
    return j;
  }
  std::unique_ptr<RecordingJob> job(const std::string& key, Clock::time_point deadline = Clock::time_point::max()) {
    auto j = std::make_unique<RecordingJob>();
    j->key = key;
    j->batches = &batches;
    j->sizes = &sizes;
    j->mutex = &mutex;
    j->deadline = deadline;
    return j;
  }
};

TEST(Scheduler, RunsAtOnceWhenIdle) {
  Recorder rec;
  Scheduler s({.executors = 1}, nullptr);
  auto job = rec.job("a");
  auto done = job->outcome.get_future();
  ASSERT_TRUE(s.submit(std::move(job)).ok());
  // The submitting thread ran it: complete before submit returned.
  ASSERT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_TRUE(done.get().ok());
  EXPECT_EQ(rec.batches, 1);
}

TEST(Scheduler, BatchesSameKeyUpToMaxBatchAndKeepsKeysApart) {
  Recorder rec;
  // One executor waiting out a long delay: every job submitted meanwhile joins a batch.
  Scheduler s({.max_batch = 4, .max_delay = std::chrono::milliseconds(300), .executors = 1},
              nullptr);
  std::vector<std::unique_ptr<RecordingJob>> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(rec.tracked("a"));
  for (int i = 0; i < 2; ++i) jobs.push_back(rec.tracked("b"));
  std::thread first([&, j = std::move(jobs[0])]() mutable { s.submit(std::move(j)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (size_t i = 1; i < jobs.size(); ++i) ASSERT_TRUE(s.submit(std::move(jobs[i])).ok());
  first.join();
  for (auto& f : rec.outcomes) EXPECT_TRUE(f.get().ok());
  // a: 4 + 2, b: 2, in some order of batches of at most 4.
  std::sort(rec.sizes.begin(), rec.sizes.end());
  EXPECT_EQ(rec.sizes, (std::vector<int64_t>{2, 2, 4}));
}

TEST(Scheduler, RefusesWhenTheQueueIsFull) {
  Recorder rec;
  // Batches wait 300 ms to fill: two queued jobs fill a queue of two.
  Scheduler s({.max_batch = 1000, .max_delay = std::chrono::milliseconds(300), .max_queue = 2, .executors = 1},
              nullptr);
  ASSERT_TRUE(s.submit(rec.tracked("a")).ok());
  ASSERT_TRUE(s.submit(rec.tracked("b")).ok());
  EXPECT_EQ(s.submit(rec.job("c")).code, Code::overloaded);  // a refused job is never completed
  for (auto& f : rec.outcomes) EXPECT_TRUE(f.get().ok());
}

TEST(Scheduler, FailsAJobWhoseDeadlinePassesWhileQueued) {
  Recorder rec;
  Scheduler s({.max_batch = 1000, .max_delay = std::chrono::seconds(5), .executors = 1}, nullptr);
  auto job = rec.job("a", Clock::now() + std::chrono::milliseconds(50));
  auto outcome = job->outcome.get_future();
  const auto t0 = Clock::now();
  ASSERT_TRUE(s.submit(std::move(job)).ok());
  EXPECT_EQ(outcome.get().code, Code::deadline_exceeded);
  // Failed when its deadline came, not when the batch's 5 s delay ran out.
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(rec.batches, 0);
}

TEST(Scheduler, DrainRefusesNewJobs) {
  Scheduler s({}, nullptr);
  s.drain();
  auto job = std::make_unique<RecordingJob>();
  EXPECT_EQ(s.submit(std::move(job)).code, Code::unavailable);
}

Code code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ServiceError& e) {
    return e.code();
  }
  return Code::ok;
}

TEST(HttpDecode, LookupJsonAndNpy) {
  LookupCall c = decode_lookup("application/json", "", R"({"queries": [[1, 2], [3, 4.5]], "mean": true, "scale": 2})");
  EXPECT_EQ(c.queries.rows, 2);
  EXPECT_EQ(c.queries.cols, 2);
  EXPECT_EQ(c.queries.data[3], 4.5f);
  EXPECT_TRUE(c.mean);
  EXPECT_EQ(c.scale, 2.f);
  const float q[] = {1, 2, 3};
  const auto bytes = npy::encode(q, 1, 3);
  c = decode_lookup("application/x-npy", "mean=true&scale=0.5",
                    std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  EXPECT_EQ(c.queries.cols, 3);
  EXPECT_TRUE(c.mean);
  EXPECT_EQ(c.scale, 0.5f);
}

TEST(HttpDecode, RefusesWhatItCannotUse) {
  const auto bad = [](std::string_view type, std::string_view query, std::string_view body) {
    return code_of([&] { decode_lookup(type, query, body); });
  };
  EXPECT_EQ(bad("application/json", "", "{"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", "[]"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [[1, 2], [3]]})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [[1, "x"]]})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [1, 2]})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [[1e39]]})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [[1]], "sacle": 2})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "", R"({"queries": [[1]], "mean": 1})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "frobnicate=1", R"({"queries": [[1]]})"), Code::invalid_argument);
  EXPECT_EQ(bad("application/json", "scale=abc", R"({"queries": [[1]]})"), Code::invalid_argument);
  EXPECT_EQ(bad("text/csv", "", "1,2"), Code::unsupported_media);
  EXPECT_EQ(bad("application/x-npy", "", "not npy"), Code::invalid_argument);
  EXPECT_EQ(code_of([] { decode_search("application/json", "", R"({"queries": [[1]], "k": 1.5})"); }),
            Code::invalid_argument);
  EXPECT_EQ(code_of([] { decode_search("application/json", "", R"({"queries": [[1]], "score": "cosine"})"); }),
            Code::invalid_argument);
  EXPECT_EQ(code_of([] { decode_put("application/json", "", R"({"values": [[1]]})"); }), Code::invalid_argument);
  EXPECT_EQ(code_of([] { percent_decode("a%2", false); }), Code::invalid_argument);
  EXPECT_EQ(code_of([] { percent_decode("a%00b", false); }), Code::invalid_argument);
  EXPECT_EQ(percent_decode("doc%2F1%20x", false), "doc/1 x");
}

TEST(HttpDecode, PutNpyPartsInOrderOrNamed) {
  const float k[] = {1, 0, 0, 1}, g[] = {0.5f, 1};
  auto cat = [](std::initializer_list<std::vector<std::byte>> arrays) {
    std::string s;
    for (const auto& a : arrays) s.append(reinterpret_cast<const char*>(a.data()), a.size());
    return s;
  };
  const std::string body = cat({npy::encode(k, 2, 2), npy::encode(g, 2, 1)});
  PutCall c = decode_put("application/x-npy", "parts=keys,gates&dtype=bf16", body);
  EXPECT_EQ(c.keys.rows, 2);
  ASSERT_TRUE(c.gates.has_value());
  EXPECT_FALSE(c.values.has_value());
  EXPECT_EQ(c.dtype, "bf16");
  c = decode_put("application/x-npy", "", body);  // default order: keys, values
  EXPECT_TRUE(c.values.has_value());
  EXPECT_EQ(code_of([&] { decode_put("application/x-npy", "parts=keys", body); }), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { decode_put("application/x-npy", "parts=keys,keys", body); }), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { decode_put("application/x-npy", "", body.substr(0, body.size() - 1)); }),
            Code::invalid_argument);
}

TEST(HttpDecode, ResultsJsonReadsBackExactly) {
  npy::Matrix r{2, 3, {1.f / 3, -2.5e-8f, 3.4e38f, 0.f, -0.f, 123456.789f}};
  const std::string text = results_json(r);
  const LookupCall back = decode_lookup("application/json", "", "{\"queries\":" + text.substr(11, text.size() - 12) + "}");
  ASSERT_EQ(back.queries.data.size(), r.data.size());
  for (size_t i = 0; i < r.data.size(); ++i) EXPECT_EQ(back.queries.data[i], r.data[i]) << i;
}

TEST(Tokens, ReadAndWriteTokensComparedWhole) {
  ScratchDir dir("linattn_tokens");
  {
    std::ofstream f(dir("tokens"));
    f << "# comment\n\nread  reader-token-0123456789\nwrite writer-token-0123456789\n";
  }
  const Tokens t = Tokens::load(dir("tokens"));
  EXPECT_TRUE(t.enabled());
  EXPECT_EQ(t.check("reader-token-0123456789"), Access::read);
  EXPECT_EQ(t.check("writer-token-0123456789"), Access::write);
  EXPECT_EQ(t.check("reader-token-012345678"), Access::none);
  EXPECT_EQ(t.check("reader-token-01234567890"), Access::none);
  EXPECT_EQ(t.check(""), Access::none);
  EXPECT_EQ(t.check_header("Bearer writer-token-0123456789"), Access::write);
  EXPECT_EQ(t.check_header("writer-token-0123456789"), Access::none);
  EXPECT_EQ(t.check_header("Basic writer-token-0123456789"), Access::none);
  for (const char* text : {"admin abcdefghijklmnopq\n", "read short\n", "read \n", "\n# nothing\n"}) {
    {
      std::ofstream f(dir("bad"));
      f << text;
    }
    try {
      Tokens::load(dir("bad"));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const FormatError& e) {
      // The message names the file and never repeats the line's token.
      EXPECT_NE(std::string(e.what()).find(dir("bad")), std::string::npos);
      EXPECT_EQ(std::string(e.what()).find("abcdefghijklmnopq"), std::string::npos);
    }
  }
}

// A bank of `n` random symmetric memories of width d (f32 and bf16 alternately).
std::string make_bank(const ScratchDir& dir, int n, int64_t d, uint32_t seed = 1) {
  const std::string path = dir("bank.lamb");
  Bank::create(path);
  Bank bank = Bank::open(path);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<std::pair<std::string, std::vector<std::byte>>> entries;
  for (int i = 0; i < n; ++i) {
    Memory m({.key_dim = d, .value_dim = d, .symmetric = true, .dtype = i % 2 ? DType::bf16 : DType::f32});
    std::vector<float> h(static_cast<size_t>(20 * d));
    for (float& x : h) x = normal(rng);
    m.write(CView2::contiguous(h.data(), {20, d}));
    entries.emplace_back("doc" + std::to_string(i), serialize(m));
  }
  bank.append_all(entries);
  return path;
}

npy::Matrix random_rows(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  npy::Matrix m{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
  for (float& x : m.data) x = normal(rng);
  return m;
}

TEST(Service, LookupsEqualTheCoreLibrarysAndBatchesAgreeWithSingleCalls) {
  ScratchDir dir("linattn_service");
  const std::string path = make_bank(dir, 4, 24);
  Service service({path}, {.limits = {.max_batch = 64, .max_delay = std::chrono::milliseconds(200), .executors = 1}});
  const Bank bank = Bank::open(path);
  std::vector<std::future<std::pair<Status, npy::Matrix>>> answers;
  std::vector<npy::Matrix> queries;
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) queries.push_back(random_rows(1 + i % 3, 24, 100 + static_cast<uint32_t>(i)));
  std::vector<std::promise<std::pair<Status, npy::Matrix>>> promises(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) answers.push_back(promises[i].get_future());
  for (size_t i = 0; i < queries.size(); ++i)
    clients.emplace_back([&, i] {
      service.lookup({.name = "doc" + std::to_string(i % 2), .queries = queries[i]},
                     [&, i](Status s, npy::Matrix r) { promises[i].set_value({s, std::move(r)}); });
    });
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < queries.size(); ++i) {
    auto [s, r] = answers[i].get();
    ASSERT_TRUE(s.ok()) << s.message;
    const MemoryView& v = bank.memory(static_cast<int64_t>(i % 2));
    std::vector<float> expect(static_cast<size_t>(queries[i].rows * 24));
    v.lookup(CView2::contiguous(queries[i].data.data(), {queries[i].rows, 24}),
             View2::contiguous(expect.data(), {queries[i].rows, 24}));
    ASSERT_EQ(r.rows, queries[i].rows);
    // A batch is one product of all its queries: the same numbers up to float32 rounding of a
    // different summation order.
    for (size_t j = 0; j < expect.size(); ++j)
      EXPECT_NEAR(r.data[j], expect[j], 1e-5f * (1 + std::fabs(expect[j]))) << i << " " << j;
  }
  // Fewer batches than requests: some ran together.
  const std::string metrics = service.render_metrics();
  const size_t at = metrics.find("linattn_batch_requests_count ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stoi(metrics.substr(at + 29)), 8) << metrics.substr(at, 40);
  // With nothing else queued a request runs alone, through the same call as the core's: bit for bit.
  const npy::Matrix q = random_rows(5, 24, 7);
  std::promise<npy::Matrix> reply;
  service.lookup({.name = "doc1", .queries = q}, [&](Status s, npy::Matrix r) {
    EXPECT_TRUE(s.ok());
    reply.set_value(std::move(r));
  });
  const npy::Matrix alone = reply.get_future().get();
  std::vector<float> expect(5 * 24);
  bank.memory(1).lookup(CView2::contiguous(q.data.data(), {5, 24}), View2::contiguous(expect.data(), {5, 24}));
  EXPECT_EQ(alone.data, expect);
}

TEST(Service, ErrorsAreNamed) {
  ScratchDir dir("linattn_service");
  const std::string path = make_bank(dir, 2, 8);
  Service service({path}, {});
  auto lookup_code = [&](LookupCall c) {
    return code_of([&] { service.lookup(std::move(c), [](Status, npy::Matrix) {}); });
  };
  EXPECT_EQ(lookup_code({.name = "nope", .queries = random_rows(1, 8, 1)}), Code::not_found);
  EXPECT_EQ(lookup_code({.name = "doc0", .queries = random_rows(1, 7, 1)}), Code::invalid_argument);
  npy::Matrix nan = random_rows(2, 8, 1);
  nan.data[9] = std::nanf("");
  EXPECT_EQ(lookup_code({.name = "doc0", .queries = nan}), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { service.info("nope"); }), Code::not_found);
  auto search_code = [&](SearchCall c) {
    return code_of([&] { service.search(std::move(c), [](Status, SearchAnswer) {}); });
  };
  EXPECT_EQ(search_code({.queries = random_rows(1, 8, 1), .k = 0}), Code::invalid_argument);
  EXPECT_EQ(search_code({.queries = random_rows(1, 8, 1), .names = {"doc0", "nope"}}), Code::not_found);
  EXPECT_EQ(search_code({.queries = random_rows(1, 8, 1), .names = {"doc0", "doc0"}}), Code::invalid_argument);
  EXPECT_EQ(search_code({.queries = random_rows(1, 5, 1)}), Code::invalid_argument);
  // Overflow in the answer (finite memory and queries): 400, never an Inf.
  Status overflow;
  npy::Matrix huge{1, 8, std::vector<float>(8, 3e37f)};
  service.lookup({.name = "doc0", .queries = huge}, [&](Status s, npy::Matrix) { overflow = s; });
  EXPECT_EQ(overflow.code, Code::invalid_argument);
  EXPECT_NE(overflow.message.find("overflow"), std::string::npos);
  // Puts: name taken, no keys, wrong width, values to a symmetric memory.
  EXPECT_EQ(code_of([&] { service.put({.name = "doc0", .keys = random_rows(3, 8, 1)}); }), Code::already_exists);
  EXPECT_EQ(code_of([&] { service.put({.name = "x", .keys = npy::Matrix{0, 8, {}}}); }), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { service.put({.name = "x", .keys = random_rows(3, 9, 1)}); }), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { service.put({.name = "x", .keys = random_rows(3, 8, 1), .values = random_rows(3, 8, 2),
                                       .symmetric = true}); }),
            Code::invalid_argument);
  EXPECT_EQ(code_of([&] { service.put({.name = "", .keys = random_rows(3, 8, 1)}); }), Code::invalid_argument);
  EXPECT_EQ(code_of([&] { service.put({.name = "x", .keys = random_rows(3, 8, 1), .dtype = "f64"}); }),
            Code::invalid_argument);
}

TEST(Service, SearchEqualsTheCoreSearchAndPutServesAtOnce) {
  ScratchDir dir("linattn_service");
  const std::string path = make_bank(dir, 6, 16);
  Service service({path}, {});
  const npy::Matrix q = random_rows(3, 16, 5);
  SearchAnswer answer;
  service.search({.queries = q, .k = 4}, [&](Status s, SearchAnswer a) {
    ASSERT_TRUE(s.ok()) << s.message;
    answer = std::move(a);
  });
  const Bank bank = Bank::open(path);
  const SearchResults expect = bank.search(CView2::contiguous(q.data.data(), {3, 16}), {.k = 4});
  ASSERT_EQ(answer.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(answer[i].size(), 4u);
    for (size_t h = 0; h < 4; ++h) {
      EXPECT_EQ(answer[i][h].name, bank.name(expect.index[i * 4 + h]));
      EXPECT_EQ(answer[i][h].score, expect.score[i * 4 + h]);
    }
  }
  const npy::Matrix keys = random_rows(30, 16, 9);
  const MemoryDescription d = service.put({.name = "fresh", .keys = keys});
  EXPECT_EQ(d.info.tokens, 30);
  EXPECT_TRUE(d.info.config.symmetric);
  npy::Matrix r;
  service.lookup({.name = "fresh", .queries = q}, [&](Status s, npy::Matrix m) {
    ASSERT_TRUE(s.ok());
    r = std::move(m);
  });
  Memory m({.key_dim = 16, .value_dim = 16, .symmetric = true});
  m.write(CView2::contiguous(keys.data.data(), {30, 16}));
  std::vector<float> expect_r(3 * 16);
  m.lookup(CView2::contiguous(q.data.data(), {3, 16}), View2::contiguous(expect_r.data(), {3, 16}));
  for (size_t j = 0; j < expect_r.size(); ++j) EXPECT_NEAR(r.data[j], expect_r[j], 1e-4f * (1 + std::fabs(expect_r[j])));
  // It is in the bank file, durable, for every other reader.
  EXPECT_TRUE(Bank::open(path).find("fresh").has_value());
}

TEST(Library, NameInTwoBanksIsAnErrorNamingBoth) {
  ScratchDir a("linattn_library_a"), b("linattn_library_b");
  const std::string pa = make_bank(a, 2, 8), pb = make_bank(b, 3, 8);
  try {
    Library lib({pa, pb}, false);
    FAIL() << "accepted duplicate names";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(pa), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(pb), std::string::npos);
  }
}

TEST(Library, RefreshSeesAnotherProcesssAppend) {
  ScratchDir dir("linattn_library");
  const std::string path = make_bank(dir, 2, 8);
  Library lib({path}, false);
  EXPECT_EQ(lib.current()->memories.size(), 2u);
  Bank other = Bank::open(path);
  Memory m({.key_dim = 8, .value_dim = 8, .symmetric = true});
  const npy::Matrix k = random_rows(4, 8, 3);
  m.write(CView2::contiguous(k.data.data(), {4, 8}));
  other.append("late", m);
  const auto before = lib.current();
  EXPECT_TRUE(lib.refresh().empty());
  EXPECT_EQ(lib.current()->memories.size(), 3u);
  EXPECT_NE(lib.current()->find("late"), nullptr);
  EXPECT_EQ(before->memories.size(), 2u);  // a request holding the old state still reads it
}

}  // namespace
}  // namespace linattn::serve
