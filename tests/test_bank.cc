// Banks: many memories in one file, safe appends, one query against all or some.
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

class BankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("linattn_bank_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "docs.lamb").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Memory document(int64_t T, DType dtype = DType::f32) {
    auto H = test::random_tensor<2>({T, d_});
    Memory m({.key_dim = d_, .value_dim = d_, .symmetric = true, .dtype = dtype});
    m.write(H.cview());
    return m;
  }
  std::vector<char> read_file() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void write_file(const std::vector<char>& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  const int64_t d_ = 12;
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(BankTest, AppendAllCommitsEveryEntryOrNone) {
  Bank::create(path_);
  Bank bank = Bank::open(path_);
  bank.append("first", document(3));
  std::vector<std::pair<std::string, std::vector<std::byte>>> batch;
  for (int i = 0; i < 5; ++i) batch.emplace_back("doc" + std::to_string(i), serialize(document(4 + i, i % 2 ? DType::bf16 : DType::f32)));
  bank.append_all(batch);
  ASSERT_EQ(bank.size(), 6);
  EXPECT_EQ(Bank::open(path_).name(5), "doc4");
  EXPECT_EQ(Bank::open(path_).memory(3).info().tokens, 6);
  // A bad entry anywhere in the batch (a name already there, a name twice, another width)
  // rejects the whole batch: nothing of it is committed.
  Memory other({.key_dim = d_ + 1, .value_dim = d_});
  const std::vector<std::vector<std::pair<std::string, std::vector<std::byte>>>> bad = {
      {{"new", serialize(document(2))}, {"doc1", serialize(document(2))}},
      {{"x", serialize(document(2))}, {"x", serialize(document(3))}},
      {{"y", serialize(document(2))}, {"z", serialize(other)}}};
  for (const auto& b : bad) EXPECT_THROW(bank.append_all(b), ArgumentError);
  EXPECT_EQ(Bank::open(path_).size(), 6);
  bank.append_all({});
  EXPECT_EQ(Bank::open(path_).size(), 6);
}

TEST_F(BankTest, AppendListAndQueryAllOrSome) {
  Bank::create(path_);
  EXPECT_THROW(Bank::create(path_), FormatError);
  Bank bank = Bank::open(path_);
  EXPECT_EQ(bank.size(), 0);
  std::vector<Memory> docs = {document(5), document(50, DType::bf16), document(1)};
  bank.append("a", docs[0]);
  bank.append("b", docs[1]);
  bank.append("c", docs[2]);
  EXPECT_THROW(bank.append("b", docs[0]), ArgumentError);
  EXPECT_THROW(bank.append("", docs[0]), ArgumentError);
  Memory other({.key_dim = d_ + 1, .value_dim = d_});
  EXPECT_THROW(bank.append("d", other), ArgumentError);

  const Bank reopened = Bank::open(path_);
  ASSERT_EQ(reopened.size(), 3);
  EXPECT_EQ(reopened.name(1), "b");
  EXPECT_EQ(*reopened.find("c"), 2);
  EXPECT_EQ(reopened.memory(1).info().tokens, 50);

  auto q = test::random_tensor<2>({4, d_});
  Tensor<3> all({3, 4, d_}), some({2, 4, d_});
  reopened.lookup(q.cview(), all.view(), {}, {.mean = true});
  const std::vector<int64_t> sel = {2, 0};
  reopened.lookup(q.cview(), some.view(), sel, {.mean = true});
  for (int64_t j = 0; j < 3; ++j) {
    std::vector<float> expected(4 * d_);
    View2 e = View2::contiguous(expected.data(), {4, d_});
    reopened.memory(j).lookup(q.cview(), e, {.mean = true});
    for (int64_t i = 0; i < 4 * d_; ++i) EXPECT_EQ(all.data[j * 4 * d_ + i], expected[i]);
  }
  for (int64_t i = 0; i < 4 * d_; ++i) {
    EXPECT_EQ(some.data[i], all.data[2 * 4 * d_ + i]);
    EXPECT_EQ(some.data[4 * d_ + i], all.data[i]);
  }
  const std::vector<int64_t> bad = {3};
  EXPECT_THROW(reopened.lookup(q.cview(), some.view(), bad), ArgumentError);
  // The queries inside the answers' buffer (the last memory's rows): an error, not answers that
  // the first memories' lookups have overwritten.
  Tensor<3> shared({3, 4, d_});
  const CView2 inside(&shared(2, 0, 0), {4, d_}, {d_, 1});
  std::copy(q.data.begin(), q.data.end(), shared.data.begin() + 2 * 4 * d_);
  test::expect_argument_error([&] { reopened.lookup(inside, shared.view()); }, "out", "shares memory with queries");
}

TEST_F(BankTest, InterruptedAppendLosesNothingCommitted) {
  Bank::create(path_);
  Bank bank = Bank::open(path_);
  bank.append("a", document(7));
  bank.append("b", document(9));
  const auto committed = read_file();
  // A crash while writing record "c": part of its bytes reached the file, no commit did.
  Bank scratch = Bank::open(path_);
  scratch.append("c", document(11));
  const auto after = read_file();
  for (size_t cut = committed.size() + 1; cut < after.size(); cut += 97) {
    std::vector<char> torn(after.begin(), after.begin() + static_cast<long>(cut));
    // Restore the header slots as they were before the commit of "c".
    std::copy(committed.begin(), committed.begin() + 128, torn.begin());
    write_file(torn);
    Bank b = Bank::open(path_);
    ASSERT_EQ(b.size(), 2) << cut;
    EXPECT_EQ(b.uncommitted_bytes(), static_cast<int64_t>(cut - committed.size()));
    b.append("c", document(11));  // overwrites the torn tail
    EXPECT_EQ(Bank::open(path_).size(), 3);
    EXPECT_EQ(Bank::open(path_).uncommitted_bytes(), 0);
  }
}

TEST_F(BankTest, CorruptedCurrentSlotIsAnErrorNamingIt) {
  Bank::create(path_);
  Bank bank = Bank::open(path_);
  bank.append("a", document(3));
  bank.append("b", document(4));  // sequence 3: written to slot 1
  auto bytes = read_file();
  for (int at : {20, 0, 63}) {  // a field, the magic, the checksum
    auto corrupted = bytes;
    corrupted[static_cast<size_t>(64 + at)] ^= 0x55;
    write_file(corrupted);
    // Entry "b" lies past slot 0's committed end: falling back to slot 0 would drop it.
    try {
      Bank::open(path_);
      FAIL() << "a corrupted current slot was taken for an interrupted append";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("header slot 1 is corrupted"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    }
    // An append refuses too, and leaves the file as it was.
    EXPECT_THROW(bank.append("c", document(2)), FormatError);
    EXPECT_EQ(read_file(), corrupted);
  }
}

TEST_F(BankTest, CorruptedOlderSlotLosesNothing) {
  Bank::create(path_);
  Bank bank = Bank::open(path_);
  bank.append("a", document(3));  // sequence 2, slot 0
  bank.append("b", document(4));  // sequence 3, slot 1: current
  auto bytes = read_file();
  bytes[20] ^= 0x55;  // slot 0, the older commit; the file ends at slot 1's committed end
  write_file(bytes);
  Bank b = Bank::open(path_);
  ASSERT_EQ(b.size(), 2);
  b.append("c", document(5));  // rewrites slot 0
  EXPECT_EQ(Bank::open(path_).size(), 3);
}

TEST_F(BankTest, NewBankUsesSlotOneSoTheFirstAppendNeverOverwritesTheOnlyValidSlot) {
  Bank::create(path_);
  auto bytes = read_file();
  ASSERT_EQ(bytes.size(), 128u);
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.begin() + 64, [](char x) { return x == 0; }));
  Bank bank = Bank::open(path_);
  bank.append("a", document(3));
  bytes = read_file();
  bytes[20] ^= 0x55;  // the first commit, in slot 0, corrupted
  write_file(bytes);
  EXPECT_THROW(Bank::open(path_), FormatError);
}

TEST_F(BankTest, HugeDeclaredSizesAreRefusedBeforeAnyArithmetic) {
  Bank::create(path_);
  auto bytes = read_file();
  // Slot 1 with a committed end near 2^64 (and a valid checksum): an offset that overflows.
  for (uint64_t end : {~uint64_t{63}, (uint64_t{1} << 63) + 64, (uint64_t{1} << 62) + 64}) {
    auto crafted = bytes;
    std::memcpy(crafted.data() + 64 + 24, &end, 8);
    const uint64_t sum = XXH3_64bits(crafted.data() + 64, 56);
    std::memcpy(crafted.data() + 64 + 56, &sum, 8);
    write_file(crafted);
    EXPECT_THROW(Bank::open(path_), FormatError) << end;
  }
}

TEST_F(BankTest, CreateIsExclusiveAndRaceFreeAgainstAppends) {
  Bank::create(path_);
  Bank::open(path_).append("kept", document(3));
  const auto before = read_file();
  try {
    Bank::create(path_);
    FAIL() << "create replaced an existing bank";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(), before);

  // Creates racing with appends, from the start: every append that returned is in the bank.
  std::filesystem::remove(path_);
  const std::vector<std::byte> doc = serialize(document(2));
  std::atomic<int> creates{0};
  std::vector<std::vector<std::string>> appended(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 40; ++i) try {
          Bank::create(path_);
          ++creates;
        } catch (const FormatError&) {
        }
    });
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) try {
          const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
          Bank::open(path_, false).append(name, doc);
          appended[static_cast<size_t>(t)].push_back(name);
        } catch (const FormatError&) {  // no bank yet
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(creates.load(), 1);
  const Bank bank = Bank::open(path_);
  size_t total = 0;
  for (const auto& names : appended) {
    total += names.size();
    for (const auto& name : names) EXPECT_TRUE(bank.find(name)) << name;
  }
  EXPECT_EQ(static_cast<size_t>(bank.size()), total);
}

TEST_F(BankTest, CorruptedCommittedEntryIsNamedNotDropped) {
  Bank::create(path_);
  Bank bank = Bank::open(path_);
  bank.append("first", document(3));
  bank.append("second", document(4));
  auto bytes = read_file();
  bytes[bytes.size() - 70] ^= 0x01;  // inside the last memory's payload
  write_file(bytes);
  try {
    Bank::open(path_);
    FAIL() << "a corrupted entry was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bank entry 1 'second'"), std::string::npos) << e.what();
  }
  // Truncating committed data is reported too.
  bytes = read_file();
  bytes.resize(bytes.size() - 100);
  write_file(bytes);
  EXPECT_THROW(Bank::open(path_), FormatError);
  write_file({});
  EXPECT_THROW(Bank::open(path_), FormatError);
}

}  // namespace
}  // namespace linattn
