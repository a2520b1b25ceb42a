// Memory subcommands: encode, lookup, merge, compress, info, and bank {create, append, list,
// query}. Vectors go in and out as .npy (float32, C order, 2-D, rows are vectors).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "../common/memory_info_json.h"
#include "../common/run_app.h"
#include "commands.h"
#include "linattn/linattn.h"
#include "npy.h"

namespace linattn::cli {
namespace {

CView2 rows_of(const npy::Matrix& m) { return CView2::contiguous(m.data.data(), {m.rows, m.cols}); }

npy::Matrix load_finite(const std::string& path, const std::string& what) {
  npy::Matrix m = npy::load(path);
  require_finite<2>("linattn", what + " (" + path + ")", rows_of(m));
  return m;
}

struct EncodeArgs {
  std::string keys, values, gates, feature_map = "identity", dtype = "f32", out, kind = "linear";
  bool normalize = false, symmetric = false;
};

void run_encode(const EncodeArgs& a) {
  refuse_output_over_inputs("--output", a.out, {a.keys, a.values, a.gates});
  const npy::Matrix K = load_finite(a.keys, "--keys");
  npy::Matrix V, G;
  if (!a.values.empty()) V = load_finite(a.values, "--values");
  if (!a.gates.empty()) G = load_finite(a.gates, "--gates");
  MemoryConfig c;
  c.key_dim = K.cols;
  c.value_dim = a.values.empty() ? K.cols : V.cols;
  c.feature_map = *parse_feature_map(a.feature_map);
  c.dtype = *parse_dtype(a.dtype);
  c.normalize = a.normalize;
  c.symmetric = a.symmetric;
  c.gated = !a.gates.empty();
  c.kind = *parse_memory_kind(a.kind);
  if (c.symmetric && !a.values.empty()) throw Error("--symmetric stores keys = values: drop --values");
  if (c.gated && (G.cols != 1 || G.rows != K.rows))
    throw Error("--gates must be a " + std::to_string(K.rows) + " x 1 array (one weight per key), got " +
                std::to_string(G.rows) + " x " + std::to_string(G.cols));
  Memory m(c);
  const CView1 g = c.gated ? CView1(G.data.data(), {G.rows}, {1}) : CView1{};
  // Without --values the keys are also the values, as in the paper.
  const CView2 values = c.symmetric ? CView2{} : (a.values.empty() ? rows_of(K) : rows_of(V));
  m.write(rows_of(K), values, g);
  save_memory(m, a.out);
  std::fprintf(stderr, "encoded %lld tokens into %s (%lld x %lld, %s, %lld bytes)\n",
               static_cast<long long>(m.tokens()), a.out.c_str(), static_cast<long long>(c.key_dim),
               static_cast<long long>(c.value_dim), std::string(to_string(c.dtype)).c_str(),
               static_cast<long long>(serialize(m).size()));
}

struct LookupArgs {
  std::string memory, queries, out;
  bool mean = false;
  float scale = 1.f;
};

void run_lookup(const LookupArgs& a) {
  refuse_output_over_inputs("--output", a.out, {a.memory, a.queries});
  const MemoryView m = open_memory(a.memory);
  const npy::Matrix Q = load_finite(a.queries, "--queries");
  std::vector<float> R(static_cast<size_t>(Q.rows * m.info().config.value_dim));
  m.lookup(rows_of(Q), View2::contiguous(R.data(), {Q.rows, m.info().config.value_dim}),
           {.mean = a.mean, .scale = a.scale});
  // Finite memories and queries can still have products past float32's range.
  require_finite<2>("linattn", "the results (they overflow float32: scale the queries or --scale down)",
                    CView2::contiguous(R.data(), {Q.rows, m.info().config.value_dim}));
  npy::save(a.out, R.data(), Q.rows, m.info().config.value_dim);
}

void run_info(const std::string& path, bool json) {
  // open_memory verifies the checksum: reaching here means it matched.
  const MemoryView m = open_memory(path);
  nlohmann::json j = apps::memory_info_json(m.info());
  j["path"] = path;
  j["checksum"] = "ok";
  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    std::printf("%-18s %s\n", it.key().c_str(), it->is_string() ? it->get<std::string>().c_str() : it->dump().c_str());
}

}  // namespace

void add_memory_commands(CLI::App& app) {
  {
    auto a = std::make_shared<EncodeArgs>();
    CLI::App* cmd = app.add_subcommand("encode", "Encode keys (and values) into a fixed-size memory file");
    cmd->add_option("--keys", a->keys, "keys, T x dk .npy (float32)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--values", a->values, "values, T x dv .npy (default: the keys)")->check(CLI::ExistingFile);
    cmd->add_option("--gates", a->gates, "per-token weights, T x 1 .npy")->check(CLI::ExistingFile);
    cmd->add_option("--feature-map", a->feature_map, "identity, elu+1 or relu")
        ->check(CLI::IsMember({"identity", "elu+1", "elu_plus_one", "relu"}));
    cmd->add_flag("--normalize", a->normalize, "keep the normaliser z and normalise lookups");
    cmd->add_option("--dtype", a->dtype, "storage dtype: f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
    cmd->add_flag("--symmetric", a->symmetric, "keys = values: store d(d+1)/2 numbers");
    cmd->add_option("--kind", a->kind,
                    "linear (the paper's), galerkin (rows layer-normalised), content-lambda (keys softmax-ed over "
                    "positions) or kslot (keys are K slot scores; queries too)")
        ->check(CLI::IsMember({"linear", "galerkin", "content-lambda", "lambda", "kslot"}));
    cmd->add_option("-o,--output", a->out, "memory file to write (.lam)")->required();
    cmd->callback([a] { run_encode(*a); });
  }
  {
    auto a = std::make_shared<LookupArgs>();
    CLI::App* cmd = app.add_subcommand("lookup", "Answer queries from a memory file");
    cmd->add_option("memory", a->memory, "memory file (.lam)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--queries", a->queries, "queries, m x dk .npy")->required()->check(CLI::ExistingFile);
    cmd->add_option("-o,--output", a->out, "results, m x dv .npy, in the order of the queries")->required();
    cmd->add_flag("--mean", a->mean, "divide by the token count, as the authors' code does");
    cmd->add_option("--scale", a->scale, "multiply results by this (the authors use 1000 with --mean)");
    cmd->callback([a] { run_lookup(*a); });
  }
  {
    auto inputs = std::make_shared<std::vector<std::string>>();
    auto out = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("merge", "Merge memories encoded apart into one (their sum)");
    cmd->add_option("memories", *inputs, "memory files")->required()->expected(2, -1)->check(CLI::ExistingFile);
    cmd->add_option("-o,--output", *out, "memory file to write")->required();
    cmd->callback([inputs, out] {
      refuse_output_over_inputs("--output", *out, *inputs);
      const MemoryView first = open_memory(inputs->front());
      Memory sum = first.to_memory();
      for (size_t i = 1; i < inputs->size(); ++i) sum.merge(open_memory((*inputs)[i]).to_memory());
      save_memory(sum, *out);
    });
  }
  {
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto opts = std::make_shared<CompressOptions>();
    CLI::App* cmd = app.add_subcommand("compress", "Rank-r approximation of a symmetric memory");
    cmd->add_option("memory", *in, "memory file")->required()->check(CLI::ExistingFile);
    auto* rank = cmd->add_option("--rank", opts->rank, "eigenpairs to keep")->check(linattn::apps::positive());
    auto* err = cmd->add_option("--max-error", opts->max_error, "smallest rank with relative error at most this")
                    ->check(CLI::Range(0.0, 1.0));
    rank->excludes(err);
    cmd->add_option("-o,--output", *out, "memory file to write")->required();
    cmd->callback([in, out, opts, rank, err] {
      if (rank->count() + err->count() != 1) throw Error("give --rank or --max-error");
      refuse_output_over_inputs("--output", *out, {*in});
      const std::vector<std::byte> bytes = compress_to_bytes(open_memory(*in), *opts);
      const MemoryView c = parse_memory(bytes, nullptr, "compressed memory");
      write_file_atomic(*out, bytes);
      std::fprintf(stderr, "rank %lld, relative error %.3g, %lld bytes\n", static_cast<long long>(c.info().rank),
                   c.info().compression_error, static_cast<long long>(kMemoryHeaderBytes + c.info().payload_bytes));
    });
  }
  {
    auto path = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand("info", "Describe a memory file and verify its checksum");
    cmd->add_option("memory", *path, "memory file")->required()->check(CLI::ExistingFile);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([path, json] { run_info(*path, *json); });
  }
  add_bank_commands(app);
}

}  // namespace linattn::cli
