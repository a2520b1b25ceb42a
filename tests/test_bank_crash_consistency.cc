// Crash consistency of banks: a crash is injected before every write, truncate, fsync, rename
// and link that creating a bank and appending to it make (the file layer's fault hook), and
// after each the bank must open with exactly the committed entries (an append in flight may be
// there whole or not at all) and must take further appends. Two crash models:
//   - the process dies: every write made so far is in the file (the page cache survives);
//   - the machine loses power: only what the last completed fsync covered survives.
// A 64-byte header slot write is taken as atomic (it lies inside one 512-byte sector); a torn
// slot is corruption, which BankTest.CorruptedCurrentSlotIsAnErrorNamingIt covers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "linattn/linattn.h"
#include "core/file_io.h"
#include "scratch_dir.h"
#include "test_util.h"

namespace linattn {
namespace {

struct SimulatedCrash {};

// The hook's state (the hook is a plain function pointer, process-wide).
struct FaultPlan {
  int crash_at = -1;  // the operation that does not happen
  int seen = 0;
  std::string bank;   // the bank file, snapshotted at every fsync of it
  std::vector<char> durable;
  bool durable_exists = false;
} plan;

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void fault_hook(const char* operation, const std::string& path) {
  if (plan.seen++ == plan.crash_at) throw SimulatedCrash{};
  // The fsync is about to happen: what the bank file holds now is durable once it returns.
  if (std::string(operation) == "fsync" && path == plan.bank) {
    plan.durable = slurp(plan.bank);
    plan.durable_exists = true;
  }
}

class BankCrashTest : public ::testing::Test {
 protected:
  void TearDown() override { detail::set_fault_hook(nullptr); }

  Memory document(int64_t T) {
    auto H = test::random_tensor<2>({T, 6});
    Memory m({.key_dim = 6, .value_dim = 6, .symmetric = true});
    m.write(H.cview());
    return m;
  }

  // The workload: create, one append, a batch of two, one append. *committed gathers the names
  // of the appends that returned, *in_flight holds those of the append under way; both survive a
  // crash (the exception).
  void workload(const std::string& path, std::set<std::string>* committed, std::set<std::string>* in_flight) {
    committed->clear();
    in_flight->clear();
    Bank::create(path);
    plan.durable = slurp(path);  // create returned: the new bank is on disk
    plan.durable_exists = true;
    for (const std::vector<std::string>& names : {std::vector<std::string>{"a"}, {"b", "cc"}, {"ddd"}}) {
      std::vector<std::pair<std::string, std::vector<std::byte>>> batch;
      for (const auto& n : names) batch.emplace_back(n, serialize(document(3 + static_cast<int64_t>(n.size()))));
      *in_flight = {names.begin(), names.end()};
      Bank::open(path).append_all(batch);
      committed->insert(names.begin(), names.end());
      in_flight->clear();
    }
  }

  // Opens what a crash left and checks it; then appends once more.
  void check(const std::string& path, const std::set<std::string>& committed, const std::set<std::string>& in_flight,
             const std::string& what) {
    if (!std::filesystem::exists(path)) {
      EXPECT_TRUE(committed.empty()) << what << ": the bank vanished after commits";
      return;
    }
    Bank bank = Bank::open(path);
    std::set<std::string> names;
    for (int64_t i = 0; i < bank.size(); ++i) names.insert(bank.name(i));
    std::set<std::string> with_in_flight = committed;
    with_in_flight.insert(in_flight.begin(), in_flight.end());
    EXPECT_TRUE(names == committed || names == with_in_flight) << what << ": " << names.size() << " entries";
    bank.append("after-crash", document(2));
    EXPECT_EQ(Bank::open(path).size(), static_cast<int64_t>(names.size()) + 1) << what;
  }

  test::ScratchDir dir_{"linattn_bank_crash"};
};

TEST_F(BankCrashTest, EveryFailurePointKeepsExactlyTheCommittedEntries) {
  // Count the operations of a run without crashes first.
  const std::string count_path = dir_("count.lamb");
  plan = FaultPlan{.crash_at = -1, .seen = 0, .bank = count_path};
  detail::set_fault_hook(fault_hook);
  std::set<std::string> committed, in_flight;
  workload(count_path, &committed, &in_flight);
  detail::set_fault_hook(nullptr);
  const int points = plan.seen;
  ASSERT_EQ(committed.size(), 4u);
  ASSERT_GE(points, 3 * 5 + 3);  // each append: truncate, write, fsync, write, fsync; create more

  int crashes = 0;
  for (int n = 0; n < points; ++n) {
    const std::string path = dir_("crash" + std::to_string(n) + ".lamb");
    plan = FaultPlan{.crash_at = n, .seen = 0, .bank = path};
    detail::set_fault_hook(fault_hook);
    bool crashed = false;
    try {
      workload(path, &committed, &in_flight);
    } catch (const SimulatedCrash&) {
      crashed = true;
    }
    detail::set_fault_hook(nullptr);
    ASSERT_TRUE(crashed) << "no crash at operation " << n;
    ++crashes;
    const std::string what = "crash before operation " + std::to_string(n);
    const std::vector<char> durable = plan.durable;
    const bool durable_exists = plan.durable_exists;
    check(path, committed, in_flight, what + " (process)");
    if (durable_exists) {
      std::ofstream(path, std::ios::binary | std::ios::trunc)
          .write(durable.data(), static_cast<std::streamsize>(durable.size()));
      check(path, committed, in_flight, what + " (power loss)");
    }
  }
  std::printf("crash points covered: %d (each checked as a process crash and, once the bank exists, as a power loss)\n",
              crashes);
}

}  // namespace
}  // namespace linattn
