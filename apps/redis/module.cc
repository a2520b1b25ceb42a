// linattn_redis.so: the fixed-size memory as a native Redis type (docs/redis.md). Load with
//   redis-server --loadmodule /path/to/linattn_redis.so
// Float32 vectors travel as binary strings, rows concatenated, little-endian.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "linattn/core/error.h"
#include "linattn/core/threads.h"
#include "linattn/memory/memory_file.h"
#include "stored_memory.h"

extern "C" {
#include "redismodule.h"
}

namespace {

using linattn::redis::StoredMemory;

RedisModuleType* g_type = nullptr;
// The type's encoding version in RDB, DUMP and AOF-less replication: the value is its .lam bytes
// (whose own header carries the .lam format's version), so this changes only if that wrapping
// does. Version 1 payloads are read by every later version.
constexpr int kEncodingVersion = 1;

int error(RedisModuleCtx* ctx, const std::string& message) {
  return RedisModule_ReplyWithError(ctx, ("ERR " + message).c_str());
}

std::string text(RedisModuleString* s) {
  size_t n = 0;
  const char* p = RedisModule_StringPtrLen(s, &n);
  return {p, n};
}

bool is(RedisModuleString* s, const char* word) { return strcasecmp(text(s).c_str(), word) == 0; }

// A blob of float32 rows of `cols` numbers: its rows, or an error naming `what`.
struct Rows {
  std::vector<float> data;
  int64_t rows = 0;
};

bool parse_rows(RedisModuleCtx* ctx, RedisModuleString* blob, int64_t cols, const char* what, Rows& out) {
  size_t n = 0;
  const char* p = RedisModule_StringPtrLen(blob, &n);
  const size_t row_bytes = static_cast<size_t>(cols) * 4;
  if (n % row_bytes != 0) {
    error(ctx, std::string(what) + " blob of " + std::to_string(n) + " bytes is not a whole number of rows of " +
                   std::to_string(cols) + " float32 numbers (" + std::to_string(row_bytes) + " bytes each)");
    return false;
  }
  out.rows = static_cast<int64_t>(n / row_bytes);
  out.data.resize(n / 4);
  if (n) std::memcpy(out.data.data(), p, n);
  for (size_t i = 0; i < out.data.size(); ++i)
    if (!std::isfinite(out.data[i])) {
      error(ctx, std::string(what) + " has a non-finite value (NaN or Inf) at row " + std::to_string(i / cols) +
                     ", column " + std::to_string(i % cols));
      return false;
    }
  return true;
}

bool parse_int(RedisModuleString* s, long long lo, long long hi, long long& v) {
  return RedisModule_StringToLongLong(s, &v) == REDISMODULE_OK && v >= lo && v <= hi;
}

bool parse_float(RedisModuleString* s, double& v) {
  return RedisModule_StringToDouble(s, &v) == REDISMODULE_OK && std::isfinite(v);
}

// The key's memory for reading (nullptr with an error replied: WRONGTYPE, or no such key).
StoredMemory* open_value(RedisModuleCtx* ctx, RedisModuleString* name, int mode, RedisModuleKey** key_out) {
  RedisModuleKey* key = static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, name, mode));
  if (key_out) *key_out = key;
  const int type = RedisModule_KeyType(key);
  if (type == REDISMODULE_KEYTYPE_EMPTY) {
    error(ctx, "no memory at key '" + text(name) + "' (LA.CREATE or LA.IMPORT makes one)");
    return nullptr;
  }
  if (type != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(key) != g_type) {
    RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    return nullptr;
  }
  return static_cast<StoredMemory*>(RedisModule_ModuleTypeGetValue(key));
}

// Runs `body`, turning linattn's exceptions into Redis errors (never a crash of the server).
template <class Body>
int guarded(RedisModuleCtx* ctx, Body body) {
  try {
    return body();
  } catch (const linattn::Error& e) {
    return error(ctx, e.what());
  } catch (const std::bad_alloc&) {
    return error(ctx, "not enough memory for this request");
  } catch (const std::exception& e) {
    return error(ctx, e.what());
  }
}

// LA.CREATE key DK dk DV dv [SYMMETRIC] [NORMALIZE] [FEATURE_MAP m] [GATED] [DTYPE f32|bf16]
int la_create(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc < 2) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    linattn::MemoryConfig c;
    bool have_dk = false;
    for (int i = 2; i < argc; ++i) {
      long long v = 0;
      if (is(argv[i], "DK") && i + 1 < argc) {
        if (!parse_int(argv[++i], 1, linattn::redis::kMaxWidth, v))
          return error(ctx, "DK must be an integer from 1 to " + std::to_string(linattn::redis::kMaxWidth));
        c.key_dim = v;
        have_dk = true;
      } else if (is(argv[i], "DV") && i + 1 < argc) {
        if (!parse_int(argv[++i], 1, linattn::redis::kMaxWidth, v))
          return error(ctx, "DV must be an integer from 1 to " + std::to_string(linattn::redis::kMaxWidth));
        c.value_dim = v;
      } else if (is(argv[i], "SYMMETRIC")) {
        c.symmetric = true;
      } else if (is(argv[i], "NORMALIZE")) {
        c.normalize = true;
      } else if (is(argv[i], "GATED")) {
        c.gated = true;
      } else if (is(argv[i], "FEATURE_MAP") && i + 1 < argc) {
        const auto fm = linattn::parse_feature_map(text(argv[++i]));
        if (!fm) return error(ctx, "unknown FEATURE_MAP '" + text(argv[i]) + "' (identity, elu+1, relu)");
        c.feature_map = *fm;
      } else if (is(argv[i], "DTYPE") && i + 1 < argc) {
        const auto dt = linattn::parse_dtype(text(argv[++i]));
        if (!dt) return error(ctx, "unknown DTYPE '" + text(argv[i]) + "' (f32, bf16)");
        c.dtype = *dt;
      } else {
        return error(ctx, "unknown or incomplete option '" + text(argv[i]) +
                              "' (DK n, DV n, SYMMETRIC, NORMALIZE, FEATURE_MAP m, GATED, DTYPE f32|bf16)");
      }
    }
    if (!have_dk) return error(ctx, "DK is required");
    if (c.value_dim == 0) c.value_dim = c.key_dim;
    RedisModuleKey* key = static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE));
    if (RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_EMPTY) return error(ctx, "key '" + text(argv[1]) + "' exists");
    auto* value = new StoredMemory(StoredMemory::create(c));
    RedisModule_ModuleTypeSetValue(key, g_type, value);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
  });
}

// LA.WRITE key KEYS blob [VALUES blob] [GATES blob] -> tokens so far
int la_write(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc < 4 || argc % 2 != 0) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    RedisModuleKey* key = nullptr;
    StoredMemory* m = open_value(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key);
    if (!m) return REDISMODULE_OK;
    const linattn::MemoryConfig& c = m->info().config;
    RedisModuleString *keys = nullptr, *values = nullptr, *gates = nullptr;
    for (int i = 2; i + 1 < argc; i += 2) {
      if (is(argv[i], "KEYS")) keys = argv[i + 1];
      else if (is(argv[i], "VALUES")) values = argv[i + 1];
      else if (is(argv[i], "GATES")) gates = argv[i + 1];
      else return error(ctx, "unknown option '" + text(argv[i]) + "' (KEYS blob, VALUES blob, GATES blob)");
    }
    if (!keys) return error(ctx, "KEYS is required");
    if (values && c.symmetric) return error(ctx, "a SYMMETRIC memory stores keys = values: give no VALUES");
    if (gates && !c.gated) return error(ctx, "GATES given to a memory created without GATED");
    if (!gates && c.gated) return error(ctx, "a GATED memory needs GATES (one float32 per key)");
    Rows k, v, g;
    if (!parse_rows(ctx, keys, c.key_dim, "KEYS", k)) return REDISMODULE_OK;
    if (values && !parse_rows(ctx, values, c.value_dim, "VALUES", v)) return REDISMODULE_OK;
    if (gates && !parse_rows(ctx, gates, 1, "GATES", g)) return REDISMODULE_OK;
    if (values && v.rows != k.rows)
      return error(ctx, std::to_string(v.rows) + " VALUES rows for " + std::to_string(k.rows) + " KEYS rows");
    if (gates && g.rows != k.rows)
      return error(ctx, std::to_string(g.rows) + " GATES for " + std::to_string(k.rows) + " KEYS rows");
    if (!values && !c.symmetric && c.key_dim != c.value_dim)
      return error(ctx, "VALUES are required: the keys cannot be the values when DK != DV");
    const auto K = linattn::CView2::contiguous(k.data.data(), {k.rows, c.key_dim});
    const linattn::CView2 V = c.symmetric ? linattn::CView2{}
                              : values    ? linattn::CView2::contiguous(v.data.data(), {v.rows, c.value_dim})
                                          : K;
    m->write(K, V, gates ? linattn::CView1(g.data.data(), {g.rows}, {1}) : linattn::CView1{});
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithLongLong(ctx, m->info().tokens);
  });
}

// [MEAN] [SCALE s] from argv[from, to): false with an error replied.
bool lookup_options(RedisModuleCtx* ctx, RedisModuleString** argv, int from, int to, linattn::LookupOptions& o) {
  for (int i = from; i < to; ++i) {
    double s = 0;
    if (is(argv[i], "MEAN")) o.mean = true;
    else if (is(argv[i], "SCALE") && i + 1 < to) {
      if (!parse_float(argv[++i], s)) {
        error(ctx, "SCALE must be a finite number");
        return false;
      }
      o.scale = static_cast<float>(s);
    } else {
      error(ctx, "unknown or incomplete option '" + text(argv[i]) + "' (MEAN, SCALE s)");
      return false;
    }
  }
  return true;
}

// The answers of `m` to `q`, replied as one blob; false with an error replied.
bool reply_lookup(RedisModuleCtx* ctx, const StoredMemory& m, const Rows& q, const linattn::LookupOptions& o) {
  const linattn::MemoryConfig& c = m.info().config;
  std::vector<float> r(static_cast<size_t>(q.rows * c.value_dim));
  if (q.rows > 0)
    m.view().lookup(linattn::CView2::contiguous(q.data.data(), {q.rows, c.key_dim}),
                    linattn::View2::contiguous(r.data(), {q.rows, c.value_dim}), o);
  for (const float x : r)
    if (!std::isfinite(x)) {
      error(ctx, "the results overflow float32: scale the queries or SCALE down");
      return false;
    }
  RedisModule_ReplyWithStringBuffer(ctx, reinterpret_cast<const char*>(r.data()), r.size() * 4);
  return true;
}

// LA.LOOKUP key QUERIES blob [MEAN] [SCALE s] -> blob of result rows
int la_lookup(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc < 4) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    StoredMemory* m = open_value(ctx, argv[1], REDISMODULE_READ, nullptr);
    if (!m) return REDISMODULE_OK;
    if (!is(argv[2], "QUERIES")) return error(ctx, "expected QUERIES blob after the key");
    linattn::LookupOptions o;
    if (!lookup_options(ctx, argv, 4, argc, o)) return REDISMODULE_OK;
    Rows q;
    if (!parse_rows(ctx, argv[3], m->info().config.key_dim, "QUERIES", q)) return REDISMODULE_OK;
    reply_lookup(ctx, *m, q, o);
    return REDISMODULE_OK;
  });
}

// LA.MLOOKUP QUERIES blob [MEAN] [SCALE s] KEYS key... -> one blob per key
int la_mlookup(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc < 5) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    if (!is(argv[1], "QUERIES")) return error(ctx, "expected QUERIES blob first");
    int keys_at = -1;
    for (int i = 3; i < argc; ++i)
      if (is(argv[i], "KEYS")) {
        keys_at = i;
        break;
      }
    if (keys_at < 0 || keys_at + 1 >= argc) return error(ctx, "expected KEYS key... at the end");
    linattn::LookupOptions o;
    if (!lookup_options(ctx, argv, 3, keys_at, o)) return REDISMODULE_OK;
    // Every key is checked before any answer is sent.
    std::vector<StoredMemory*> mems;
    for (int i = keys_at + 1; i < argc; ++i) {
      StoredMemory* m = open_value(ctx, argv[i], REDISMODULE_READ, nullptr);
      if (!m) return REDISMODULE_OK;
      if (!mems.empty() && m->info().config.key_dim != mems.front()->info().config.key_dim)
        return error(ctx, "the memories' key widths differ: one QUERIES blob cannot fit them all");
      mems.push_back(m);
    }
    Rows q;
    if (!parse_rows(ctx, argv[2], mems.front()->info().config.key_dim, "QUERIES", q)) return REDISMODULE_OK;
    RedisModule_ReplyWithArray(ctx, static_cast<long>(mems.size()));
    for (StoredMemory* m : mems) reply_lookup(ctx, *m, q, o);  // an overflow: an error in its place
    return REDISMODULE_OK;
  });
}

// LA.MERGE dst src... -> tokens
int la_merge(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc < 3) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    StoredMemory* dst = open_value(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, nullptr);
    if (!dst) return REDISMODULE_OK;
    std::vector<const StoredMemory*> srcs;
    for (int i = 2; i < argc; ++i) {
      const StoredMemory* s = open_value(ctx, argv[i], REDISMODULE_READ, nullptr);
      if (!s) return REDISMODULE_OK;
      srcs.push_back(s);
    }
    StoredMemory merged = *dst;
    for (const StoredMemory* s : srcs) merged.merge(*s);  // all or nothing
    *dst = std::move(merged);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithLongLong(ctx, dst->info().tokens);
  });
}

// LA.DECAY key gamma
int la_decay(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc != 3) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    StoredMemory* m = open_value(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, nullptr);
    if (!m) return REDISMODULE_OK;
    double g = 0;
    if (!parse_float(argv[2], g) || g < 0 || g > 1) return error(ctx, "gamma must be a number in [0, 1]");
    m->decay(static_cast<float>(g));
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
  });
}

// LA.INFO key -> flat list of field, value
int la_info(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc != 2) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    const StoredMemory* m = open_value(ctx, argv[1], REDISMODULE_READ, nullptr);
    if (!m) return REDISMODULE_OK;
    const linattn::MemoryInfo& i = m->info();
    RedisModule_ReplyWithArray(ctx, 22);
    auto field = [&](const char* name) { RedisModule_ReplyWithSimpleString(ctx, name); };
    auto str = [&](const char* name, std::string_view v) {
      field(name);
      RedisModule_ReplyWithStringBuffer(ctx, v.data(), v.size());
    };
    auto num = [&](const char* name, long long v) {
      field(name);
      RedisModule_ReplyWithLongLong(ctx, v);
    };
    num("key_dim", i.config.key_dim);
    num("value_dim", i.config.value_dim);
    str("dtype", linattn::to_string(i.config.dtype));
    str("layout", linattn::to_string(i.layout));
    str("feature_map", linattn::to_string(i.config.feature_map));
    num("normalize", i.config.normalize);
    num("gated", i.config.gated);
    num("symmetric", i.config.symmetric);
    num("rank", i.rank);
    num("tokens", i.tokens);
    num("bytes", static_cast<long long>(m->size()));
    return REDISMODULE_OK;
  });
}

// LA.IMPORT key lam-bytes [REPLACE]
int la_import(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc != 3 && argc != 4) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    const bool replace = argc == 4 && is(argv[3], "REPLACE");
    if (argc == 4 && !replace) return error(ctx, "unknown option '" + text(argv[3]) + "' (REPLACE)");
    size_t n = 0;
    const char* p = RedisModule_StringPtrLen(argv[2], &n);
    StoredMemory value = StoredMemory::decode({reinterpret_cast<const std::byte*>(p), n}, "LA.IMPORT payload");
    RedisModuleKey* key = static_cast<RedisModuleKey*>(RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE));
    const int type = RedisModule_KeyType(key);
    if (type != REDISMODULE_KEYTYPE_EMPTY && !replace) return error(ctx, "key '" + text(argv[1]) + "' exists (REPLACE overwrites)");
    if (type != REDISMODULE_KEYTYPE_EMPTY && RedisModule_ModuleTypeGetType(key) != g_type)
      return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    RedisModule_ModuleTypeSetValue(key, g_type, new StoredMemory(std::move(value)));
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
  });
}

// LA.EXPORT key -> the .lam bytes
int la_export(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  if (argc != 2) return RedisModule_WrongArity(ctx);
  return guarded(ctx, [&] {
    const StoredMemory* m = open_value(ctx, argv[1], REDISMODULE_READ, nullptr);
    if (!m) return REDISMODULE_OK;
    const std::vector<std::byte> b = m->bytes();
    return RedisModule_ReplyWithStringBuffer(ctx, reinterpret_cast<const char*>(b.data()), b.size());
  });
}

// The type's callbacks: RDB (and so DUMP, RESTORE, MIGRATE and full resynchronisation) store the
// .lam bytes; the AOF rewrite emits LA.IMPORT of them.
void* rdb_load(RedisModuleIO* io, int encver) {
  if (encver < 1 || encver > kEncodingVersion) {
    RedisModule_LogIOError(io, "warning", "linattn: unknown encoding version %d", encver);
    return nullptr;
  }
  size_t n = 0;
  char* p = RedisModule_LoadStringBuffer(io, &n);
  if (!p) return nullptr;
  try {
    auto* v = new StoredMemory(StoredMemory::decode({reinterpret_cast<const std::byte*>(p), n}, "RDB payload"));
    RedisModule_Free(p);
    return v;
  } catch (const std::exception& e) {
    RedisModule_Free(p);
    RedisModule_LogIOError(io, "warning", "linattn: %s", e.what());
    return nullptr;  // Redis refuses the payload (RESTORE: "Bad data format")
  }
}

void rdb_save(RedisModuleIO* io, void* value) {
  const auto* m = static_cast<const StoredMemory*>(value);
  const std::vector<std::byte> b = m->bytes();
  RedisModule_SaveStringBuffer(io, reinterpret_cast<const char*>(b.data()), b.size());
}

void aof_rewrite(RedisModuleIO* aof, RedisModuleString* key, void* value) {
  const auto* m = static_cast<const StoredMemory*>(value);
  const std::vector<std::byte> b = m->bytes();
  RedisModule_EmitAOF(aof, "LA.IMPORT", "sbc", key, reinterpret_cast<const char*>(b.data()), b.size(), "REPLACE");
}

size_t mem_usage(const void* value) { return static_cast<const StoredMemory*>(value)->memory_usage(); }

void free_value(void* value) { delete static_cast<StoredMemory*>(value); }

void digest(RedisModuleDigest* md, void* value) {
  const auto* m = static_cast<const StoredMemory*>(value);
  const std::vector<std::byte> b = m->bytes();
  RedisModule_DigestAddStringBuffer(md, reinterpret_cast<const char*>(b.data()), b.size());
  RedisModule_DigestEndSequence(md);
}

// Key specs (Redis 7): where a command's keys are and what it does to them, for cluster routing,
// COMMAND GETKEYS and ACL key patterns.
int describe(RedisModuleCtx* ctx, const char* name, int arity, uint64_t key_flags, bool keys_after_keyword,
             int last_key) {
  RedisModuleCommand* cmd = RedisModule_GetCommand(ctx, name);
  if (!cmd) return REDISMODULE_ERR;
  RedisModuleCommandKeySpec specs[2];  // the second, all zero, ends the list
  std::memset(specs, 0, sizeof specs);
  RedisModuleCommandKeySpec& s = specs[0];
  s.flags = key_flags;
  if (keys_after_keyword) {
    s.begin_search_type = REDISMODULE_KSPEC_BS_KEYWORD;
    s.bs.keyword.keyword = "KEYS";
    s.bs.keyword.startfrom = 1;
  } else {
    s.begin_search_type = REDISMODULE_KSPEC_BS_INDEX;
    s.bs.index.pos = 1;
  }
  s.find_keys_type = REDISMODULE_KSPEC_FK_RANGE;
  s.fk.range.lastkey = keys_after_keyword ? -1 : last_key;
  s.fk.range.keystep = 1;
  s.fk.range.limit = 0;
  RedisModuleCommandInfo info;
  std::memset(&info, 0, sizeof info);
  info.version = REDISMODULE_COMMAND_INFO_VERSION;
  info.arity = arity;
  info.key_specs = specs;
  return RedisModule_SetCommandInfo(cmd, &info);  // Redis keeps its own copy
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx* ctx, RedisModuleString**, int) {
  if (RedisModule_Init(ctx, "linattn", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
  linattn::set_num_threads(1);  // Redis runs commands on one thread; so do the kernels
  linattn::redis::set_allocator({[](size_t n) { return RedisModule_Alloc(n); }, [](void* p) { RedisModule_Free(p); }});
  RedisModuleTypeMethods tm;
  std::memset(&tm, 0, sizeof tm);
  tm.version = REDISMODULE_TYPE_METHOD_VERSION;
  tm.rdb_load = rdb_load;
  tm.rdb_save = rdb_save;
  tm.aof_rewrite = aof_rewrite;
  tm.mem_usage = mem_usage;
  tm.free = free_value;
  tm.digest = digest;
  g_type = RedisModule_CreateDataType(ctx, "LA-memory", kEncodingVersion, &tm);
  if (!g_type) return REDISMODULE_ERR;

  struct Command {
    const char* name;
    RedisModuleCmdFunc fn;
    const char* flags;
    int first, last, step, arity;
    uint64_t key_flags;
    bool keyword;
  };
  const uint64_t rw = REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_UPDATE;
  const uint64_t ro = REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS;
  const Command commands[] = {
      {"la.create", la_create, "write deny-oom", 1, 1, 1, -2, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_INSERT, false},
      {"la.write", la_write, "write deny-oom", 1, 1, 1, -4, rw, false},
      {"la.lookup", la_lookup, "readonly", 1, 1, 1, -4, ro, false},
      {"la.mlookup", la_mlookup, "readonly", 0, 0, 0, -5, ro, true},
      {"la.merge", la_merge, "write deny-oom", 1, -1, 1, -3, rw, false},
      {"la.decay", la_decay, "write", 1, 1, 1, 3, rw, false},
      {"la.info", la_info, "readonly fast", 1, 1, 1, 2, REDISMODULE_CMD_KEY_RO, false},
      {"la.import", la_import, "write deny-oom", 1, 1, 1, -3, REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE, false},
      {"la.export", la_export, "readonly", 1, 1, 1, 2, ro, false},
  };
  for (const Command& c : commands) {
    if (RedisModule_CreateCommand(ctx, c.name, c.fn, c.flags, c.first, c.last, c.step) == REDISMODULE_ERR)
      return REDISMODULE_ERR;
    if (describe(ctx, c.name, c.arity, c.key_flags, c.keyword, c.last == -1 ? -1 : 0) == REDISMODULE_ERR)
      return REDISMODULE_ERR;
  }
  return REDISMODULE_OK;
}
