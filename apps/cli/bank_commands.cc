// `linattn bank ...`: many memories in one file, appended safely and queried at once.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "linattn/linattn.h"
#include "npy.h"

namespace linattn::cli {
namespace {

// A name as it can be shown on a terminal: control bytes as \xNN (banks written before names
// were checked may hold them).
std::string printable(const std::string& name) {
  std::string out;
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// The bank positions of --names (comma-separated); empty for all.
std::vector<int64_t> selection_of(const Bank& bank, const std::string& names, const std::string& path) {
  std::vector<int64_t> selection;
  std::stringstream ss(names);
  for (std::string name; std::getline(ss, name, ',');) {
    const auto i = bank.find(name);
    if (!i) throw Error("--names: no memory named '" + name + "' in " + path);
    selection.push_back(*i);
  }
  return selection;
}

struct QueryArgs {
  std::string bank, queries, out, names;
  bool mean = false;
  float scale = 1.f;
};

void run_query(const QueryArgs& a) {
  refuse_output_over_inputs("--output", a.out, {a.bank, a.queries});
  const Bank bank = Bank::open(a.bank);
  const npy::Matrix Q = npy::load(a.queries);
  require_finite<2>("linattn", "--queries (" + a.queries + ")", CView2::contiguous(Q.data.data(), {Q.rows, Q.cols}));
  const std::vector<int64_t> selection = selection_of(bank, a.names, a.bank);
  const int64_t n = selection.empty() ? bank.size() : static_cast<int64_t>(selection.size());
  if (n == 0) throw Error(a.bank + " holds no memories yet");
  const int64_t dv = bank.value_dim();
  std::vector<float> R(static_cast<size_t>(n * Q.rows * dv));
  bank.lookup(CView2::contiguous(Q.data.data(), {Q.rows, Q.cols}), View3::contiguous(R.data(), {n, Q.rows, dv}),
              selection, {.mean = a.mean, .scale = a.scale});
  require_finite<2>("linattn", "the results (they overflow float32: scale the queries or --scale down)",
                    CView2::contiguous(R.data(), {n * Q.rows, dv}));
  npy::save(a.out, R.data(), n * Q.rows, dv);
}

struct SearchArgs {
  std::string bank, queries, out, indices_out, names, score = "quadratic";
  int64_t k = 10;
  bool mean = false, json = false;
  float scale = 1.f;
};

void run_search(const SearchArgs& a) {
  refuse_output_over_inputs("--output", a.out, {a.bank, a.queries});
  refuse_output_over_inputs("--indices", a.indices_out, {a.bank, a.queries, a.out});
  if (a.out.empty() != a.indices_out.empty()) throw Error("--output and --indices go together (scores and indices)");
  if (!a.out.empty() && a.out == a.indices_out) throw Error("--output and --indices name the same file");
  const auto score = parse_search_score(a.score);
  if (!score) throw Error("--score: '" + a.score + "' is not a score (quadratic, norm)");
  if (a.k < 1) throw Error("--k: must be at least 1, got " + std::to_string(a.k));
  const Bank bank = Bank::open(a.bank);
  const npy::Matrix Q = npy::load(a.queries);
  const CView2 q = CView2::contiguous(Q.data.data(), {Q.rows, Q.cols});
  require_finite<2>("linattn", "--queries (" + a.queries + ")", q);
  const std::vector<int64_t> selection = selection_of(bank, a.names, a.bank);
  if (bank.size() == 0) throw Error(a.bank + " holds no memories yet");
  const SearchResults r = bank.search(q, {.k = a.k, .score = *score, .lookup = {.mean = a.mean, .scale = a.scale}},
                                      selection);
  if (!a.out.empty()) {
    npy::save(a.out, r.score.data(), r.queries, r.k);
    npy::save_int64(a.indices_out, r.index.data(), r.queries, r.k);
    return;
  }
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < r.queries; ++i) {
    nlohmann::json hits = nlohmann::json::array();
    for (int64_t c = 0; c < r.k; ++c) {
      const int64_t j = r.index[static_cast<size_t>(i * r.k + c)];
      const float s = r.score[static_cast<size_t>(i * r.k + c)];
      hits.push_back({{"name", bank.name(j)}, {"index", j}, {"score", std::isfinite(s) ? nlohmann::json(s) : nlohmann::json()}});
    }
    out.push_back({{"query", i}, {"results", hits}});
  }
  std::printf("%s\n", out.dump(a.json ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace

void add_bank_commands(CLI::App& app) {
  CLI::App* bank = app.add_subcommand("bank", "Many memories in one file: create, append, list, query, search");
  bank->require_subcommand(1);
  {
    auto path = std::make_shared<std::string>();
    CLI::App* cmd = bank->add_subcommand("create", "Create an empty bank");
    cmd->add_option("bank", *path, "bank file to create (must not exist)")->required();
    cmd->callback([path] { Bank::create(*path); });
  }
  {
    auto path = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto memory = std::make_shared<std::string>();
    CLI::App* cmd = bank->add_subcommand("append", "Append a memory file under a new name");
    cmd->add_option("bank", *path, "bank file")->required()->check(CLI::ExistingFile);
    cmd->add_option("name", *name, "unique name of the memory (e.g. the document id)")->required();
    cmd->add_option("memory", *memory, "memory file (.lam)")->required()->check(CLI::ExistingFile);
    cmd->callback([path, name, memory] {
      const MemoryView m = open_memory(*memory);  // validated before it reaches the bank
      std::ifstream in(*memory, std::ios::binary);
      std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      Bank b = Bank::open(*path);
      b.append(*name, std::as_bytes(std::span<const char>(raw)));
      std::fprintf(stderr, "%s: %lld memories\n", path->c_str(), static_cast<long long>(b.size()));
    });
  }
  {
    auto path = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* cmd = bank->add_subcommand("list", "List a bank's memories (and verify every checksum)");
    cmd->add_option("bank", *path, "bank file")->required()->check(CLI::ExistingFile);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([path, json] {
      const Bank b = Bank::open(*path);
      nlohmann::json j = nlohmann::json::array();
      for (int64_t i = 0; i < b.size(); ++i) {
        const MemoryInfo& m = b.memory(i).info();
        j.push_back({{"name", b.name(i)}, {"tokens", m.tokens}, {"dtype", to_string(m.config.dtype)},
                     {"layout", to_string(m.layout)}, {"bytes", kMemoryHeaderBytes + m.payload_bytes}});
      }
      // Every entry of a bank has one kind (appends check it); an empty bank has none yet.
      const std::string kind = b.size() > 0 ? std::string(to_string(b.memory(0).info().config.kind)) : "";
      if (*json) {
        std::printf("%s\n", nlohmann::json{{"path", *path}, {"key_dim", b.key_dim()}, {"value_dim", b.value_dim()},
                                           {"kind", kind}, {"memories", j}, {"uncommitted_bytes", b.uncommitted_bytes()}}
                                  .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                                  .c_str());
        return;
      }
      std::printf("%s: %lld memories, dk %lld, dv %lld%s\n", path->c_str(), static_cast<long long>(b.size()),
                  static_cast<long long>(b.key_dim()), static_cast<long long>(b.value_dim()),
                  kind.empty() || kind == "linear" ? "" : (", " + kind).c_str());
      for (const auto& e : j)
        std::printf("  %-24s %8lld tokens  %-5s %-16s %8lld bytes\n", printable(e["name"].get<std::string>()).c_str(),
                    static_cast<long long>(e["tokens"].get<int64_t>()), e["dtype"].get<std::string>().c_str(),
                    e["layout"].get<std::string>().c_str(), static_cast<long long>(e["bytes"].get<int64_t>()));
      if (b.uncommitted_bytes() > 0)
        std::printf("  (%lld bytes of an interrupted append will be overwritten by the next append)\n",
                    static_cast<long long>(b.uncommitted_bytes()));
    });
  }
  {
    auto a = std::make_shared<QueryArgs>();
    CLI::App* cmd = bank->add_subcommand("query", "Answer queries against all (or some) of a bank's memories");
    cmd->add_option("bank", a->bank, "bank file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--queries", a->queries, "queries, m x dk .npy")->required()->check(CLI::ExistingFile);
    cmd->add_option("-o,--output", a->out, "results, (memories * m) x dv .npy, memory by memory")->required();
    cmd->add_option("--names", a->names, "comma-separated memory names (default: all, in bank order)");
    cmd->add_flag("--mean", a->mean, "divide by each memory's token count");
    cmd->add_option("--scale", a->scale, "multiply results by this");
    cmd->callback([a] { run_query(*a); });
  }
  {
    auto a = std::make_shared<SearchArgs>();
    CLI::App* cmd = bank->add_subcommand(
        "search", "The k memories scoring highest for each query (quadratic: q . r = q^T C q; norm: ||r||)");
    cmd->add_option("bank", a->bank, "bank file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--queries", a->queries, "queries, m x dk .npy")->required()->check(CLI::ExistingFile);
    cmd->add_option("--k", a->k, "memories kept per query (default 10)");
    cmd->add_option("--score", a->score, "quadratic (default; needs dk = dv) or norm");
    cmd->add_option("--names", a->names, "comma-separated memory names to search (default: all)");
    cmd->add_flag("--mean", a->mean, "divide each memory's answers by its token count");
    cmd->add_option("--scale", a->scale, "multiply answers by this");
    cmd->add_flag("--json", a->json, "indent the JSON printed on stdout");
    cmd->add_option("-o,--output", a->out, "write scores, m x k float32 .npy, instead of JSON (with --indices)");
    cmd->add_option("--indices", a->indices_out, "write memory indices (bank positions), m x k int64 .npy");
    cmd->callback([a] { run_search(*a); });
  }
}

}  // namespace linattn::cli
