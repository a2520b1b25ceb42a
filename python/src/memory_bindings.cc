// Memory, MemoryView, Bank, the memory file and compression, for Python.
//
// Kernels run with the GIL released. A Memory or Bank may be used from many Python threads at
// once: lookups share a lock, changes (write, merge, append, ...) take it alone.
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "linattn/core/file_io.h"
#include "linattn/memory/bank.h"
#include "linattn/memory/compress.h"
#include "linattn/memory/memory.h"
#include "linattn/memory/memory_file.h"
#include "linattn/memory/search.h"

namespace linattn::python {
namespace {

struct PyMemory {
  explicit PyMemory(Memory m) : memory(std::move(m)) {}
  Memory memory;
  mutable std::shared_mutex mutex;
};

// A read-only memory: a file mapping, a bank entry, or a compressed memory. `bytes` holds its
// stored form when it owns one (compressed, from_bytes), so it can be saved or appended.
struct PyMemoryView {
  MemoryView view;
  std::shared_ptr<const std::vector<std::byte>> bytes;
};

struct PyBank {
  explicit PyBank(Bank b) : bank(std::move(b)) {}
  Bank bank;
  mutable std::shared_mutex mutex;
};

DType dtype_arg(const std::string& name, const char* op) {
  const auto d = parse_dtype(name);
  if (!d) throw ArgumentError(op, "dtype", "unknown dtype '" + name + "' (f32, bf16)");
  return *d;
}

// Queries: [m, dk] gives [m, dv]; one query [dk] gives [dv].
struct Queries {
  FloatArray array;
  bool single = false;
  CView2 rows;
};
Queries queries_arg(const py::object& obj, const char* op) {
  Queries q;
  if (obj.is_none()) throw ArgumentError(op, "queries", "is required, got None");
  const py::array probe = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (probe && probe.ndim() == 1) {
    q.array = float_array(obj, op, "queries", 1);
    q.single = true;
    q.rows = CView2::contiguous(q.array.data(), {1, q.array.shape(0)});
  } else {
    q.array = float_array(obj, op, "queries", 2);
    q.rows = const_view<2>(q.array);
  }
  return q;
}

LookupOptions lookup_options(bool mean, float scale, float eps) { return {.mean = mean, .scale = scale, .eps = eps}; }

// Runs `lookup(rows, out)` for queries against memories of value width dv.
template <class Lookup>
py::array lookup_into(const Queries& q, int64_t dv, Lookup&& lookup) {
  const int64_t m = q.rows.shape[0];
  FloatArray out = q.single ? FloatArray({static_cast<py::ssize_t>(dv)})
                            : FloatArray({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(dv)});
  const View2 o = View2::contiguous(out.mutable_data(), {m, dv});
  {
    py::gil_scoped_release nogil;
    use_configured_threads();
    lookup(q.rows, o);
  }
  return out;
}

py::array copy_of(const float* data, std::vector<py::ssize_t> shape) {
  FloatArray a(shape);
  std::copy(data, data + a.size(), a.mutable_data());
  return a;
}

py::bytes bytes_of(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

PyMemoryView view_owning(std::vector<std::byte> bytes, const std::string& source) {
  auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  return {parse_memory(*owned, owned, source), owned};
}

std::string config_text(const MemoryConfig& c) {
  std::string s = "dk=" + std::to_string(c.key_dim) + ", dv=" + std::to_string(c.value_dim);
  if (c.symmetric) s += ", symmetric=True";
  if (c.normalize) s += ", normalize=True";
  if (c.gated) s += ", gated=True";
  if (c.feature_map != FeatureMap::identity) s += ", feature_map='" + std::string(to_string(c.feature_map)) + "'";
  if (c.kind != MemoryKind::linear) s += ", kind='" + std::string(to_string(c.kind)) + "'";
  return s + ", dtype='" + std::string(to_string(c.dtype)) + "'";
}

// The stored form of a Memory or a MemoryView that owns one, for saving and appending.
std::vector<std::byte> stored_bytes(const py::object& obj, const char* op) {
  if (py::isinstance<PyMemory>(obj)) {
    const auto& m = obj.cast<const PyMemory&>();
    std::shared_lock lock(m.mutex);
    return serialize(m.memory);
  }
  if (py::isinstance<PyMemoryView>(obj)) {
    const auto& v = obj.cast<const PyMemoryView&>();
    if (!v.bytes)
      throw ArgumentError(op, "memory",
                          "is a view of a file or bank entry without bytes of its own: append or copy the file, or "
                          "use memory.to_memory()");
    return *v.bytes;
  }
  throw py::type_error(std::string(op) + ": argument 'memory': expected a linattn.Memory or linattn.MemoryView, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

const MemoryView& view_arg(const py::object& obj, const char* op, MemoryView& scratch,
                           std::shared_lock<std::shared_mutex>& lock) {
  if (py::isinstance<PyMemoryView>(obj)) return obj.cast<const PyMemoryView&>().view;
  if (py::isinstance<PyMemory>(obj)) {
    const auto& m = obj.cast<const PyMemory&>();
    lock = std::shared_lock(m.mutex);
    scratch = m.memory.view();
    return scratch;
  }
  throw py::type_error(std::string(op) + ": argument 'memory': expected a linattn.Memory or linattn.MemoryView, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

std::vector<int64_t> selection_arg(const PyBank& b, const py::object& names, const char* op) {
  std::vector<int64_t> sel;
  if (names.is_none()) return sel;
  if (py::isinstance<py::str>(names))
    throw py::type_error(std::string(op) + ": argument 'names': expected a list of names or indices, got one string");
  for (const py::handle item : names) {
    if (py::isinstance<py::str>(item)) {
      const auto name = item.cast<std::string>();
      const auto i = b.bank.find(name);
      if (!i) throw ArgumentError(op, "names", "no memory named '" + name + "' in " + b.bank.path());
      sel.push_back(*i);
    } else if (py::isinstance<py::int_>(item)) {
      sel.push_back(item.cast<int64_t>());
    } else {
      throw py::type_error(std::string(op) + ": argument 'names': expected names (str) or indices (int)");
    }
  }
  if (sel.empty()) throw ArgumentError(op, "names", "is empty: pass None for every memory");
  return sel;
}

SearchOptions search_options(int64_t k, const std::string& score, bool mean, float scale, float eps, const char* op) {
  const auto s = parse_search_score(score);
  if (!s) throw ArgumentError(op, "score", "unknown score '" + score + "' (quadratic, norm)");
  return {.k = k, .score = *s, .lookup = lookup_options(mean, scale, eps)};
}

// (indices [m, k] int64, scores [m, k] float32); one query [dk] gives [k] each.
py::tuple search_results(const SearchResults& r, bool single) {
  std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(r.queries), static_cast<py::ssize_t>(r.k)};
  if (single) shape.erase(shape.begin());
  IndexArray index(shape);
  FloatArray score(shape);
  std::copy(r.index.begin(), r.index.end(), index.mutable_data());
  std::copy(r.score.begin(), r.score.end(), score.mutable_data());
  return py::make_tuple(index, score);
}

constexpr const char* kSearchDoc =
    "The k memories scoring highest for each query: returns (indices [m, k] int64, scores [m, k] float32), "
    "best first (one query [dk]: [k] each). score='quadratic': phi(q) . r, for a symmetric memory "
    "q^T C q = sum_t (h_t . q)^2 (needs dk = dv); 'norm': ||r||. r is the memory's lookup with mean, scale, "
    "eps. Ties go to the lower index. Threads over memories; the answers are never all held at once.";

void bind_memory_view(py::module_& m) {
  py::class_<PyMemoryView>(m, "MemoryView", R"(A read-only stored memory: a mapped file, a bank entry or a compressed memory.

Lookups run straight from the stored numbers (f32 or bf16; full, packed symmetric or low-rank
layout). Obtain one from linattn.open_memory, Bank[name], linattn.compress or
MemoryView.from_bytes.)")
      .def("lookup",
           [](const PyMemoryView& v, const py::object& queries, bool mean, float scale, float eps) {
             const Queries q = queries_arg(queries, "linattn.MemoryView.lookup");
             return lookup_into(q, v.view.info().config.value_dim, [&](CView2 rows, View2 out) {
               v.view.lookup(rows, out, lookup_options(mean, scale, eps));
             });
           },
           py::arg("queries"), py::kw_only(), py::arg("mean") = false, py::arg("scale") = 1.f, py::arg_v("eps", 1e-6f, "1e-06"),
           "queries [m, dk] -> [m, dv] (one query [dk] -> [dv]): scale * M^T phi(q) [/ n with mean] "
           "[/ (z . phi(q) + eps) when normalising].")
      .def("to_memory",
           [](const PyMemoryView& v) {
             py::gil_scoped_release nogil;
             return std::make_unique<PyMemory>(v.view.to_memory());
           },
           "A mutable float32 linattn.Memory with the same numbers (not for low-rank memories).")
      .def("to_bytes",
           [](const PyMemoryView& v) {
             if (!v.bytes) throw ArgumentError("linattn.MemoryView.to_bytes", "self", "views a file or bank entry; read the file instead");
             return bytes_of(*v.bytes);
           },
           "The stored (.lam) bytes, for views that own them (compressed, from_bytes).")
      .def("save",
           [](const PyMemoryView& v, const std::string& path) {
             if (!v.bytes) throw ArgumentError("linattn.MemoryView.save", "self", "views a file or bank entry; copy the file instead");
             py::gil_scoped_release nogil;
             write_file_atomic(path, *v.bytes);
           },
           py::arg("path"), "Writes the .lam file atomically (a crash leaves the old file or the new one).")
      .def_static("from_bytes",
                  [](const py::bytes& b) {
                    const std::string_view s = b;
                    std::vector<std::byte> copy(reinterpret_cast<const std::byte*>(s.data()),
                                                reinterpret_cast<const std::byte*>(s.data()) + s.size());
                    py::gil_scoped_release nogil;
                    return view_owning(std::move(copy), "bytes");
                  },
                  py::arg("data"), "Validates stored (.lam) bytes and views them (FormatError if invalid).")
      .def_property_readonly("key_dim", [](const PyMemoryView& v) { return v.view.info().config.key_dim; })
      .def_property_readonly("value_dim", [](const PyMemoryView& v) { return v.view.info().config.value_dim; })
      .def_property_readonly("tokens", [](const PyMemoryView& v) { return v.view.info().tokens; })
      .def_property_readonly("dtype", [](const PyMemoryView& v) { return std::string(to_string(v.view.info().config.dtype)); })
      .def_property_readonly("layout", [](const PyMemoryView& v) { return std::string(to_string(v.view.info().layout)); })
      .def_property_readonly("rank", [](const PyMemoryView& v) { return v.view.info().rank; },
                             "Eigenpairs kept (low-rank layout; else 0).")
      .def_property_readonly("compression_error", [](const PyMemoryView& v) { return v.view.info().compression_error; },
                             "||M - M_r||_F / ||M||_F for a low-rank memory; else 0.")
      .def_property_readonly("payload_bytes", [](const PyMemoryView& v) { return v.view.info().payload_bytes; })
      .def_property_readonly("feature_map", [](const PyMemoryView& v) { return std::string(to_string(v.view.info().config.feature_map)); })
      .def_property_readonly("normalize", [](const PyMemoryView& v) { return v.view.info().config.normalize; })
      .def_property_readonly("gated", [](const PyMemoryView& v) { return v.view.info().config.gated; })
      .def_property_readonly("symmetric", [](const PyMemoryView& v) { return v.view.info().config.symmetric; })
      .def_property_readonly("kind", [](const PyMemoryView& v) { return std::string(to_string(v.view.info().config.kind)); })
      .def(py::pickle(
          [](const PyMemoryView& v) {
            if (!v.bytes)
              throw py::type_error("linattn.MemoryView: a view of a mapped file or bank entry is not picklable; "
                                   "pickle its path, or memory.to_memory()");
            return py::make_tuple(bytes_of(*v.bytes));
          },
          [](const py::tuple& t) {
            if (t.size() != 1) throw ArgumentError("linattn.MemoryView.__setstate__", "state", "not a pickled MemoryView");
            const std::string_view s = t[0].cast<py::bytes>();
            std::vector<std::byte> copy(reinterpret_cast<const std::byte*>(s.data()),
                                        reinterpret_cast<const std::byte*>(s.data()) + s.size());
            return view_owning(std::move(copy), "pickled memory");
          }))
      .def("__repr__", [](const PyMemoryView& v) {
        const auto& i = v.view.info();
        return "linattn.MemoryView(" + config_text(i.config) + ", layout='" + std::string(to_string(i.layout)) +
               "', tokens=" + std::to_string(i.tokens) + ")";
      });

  m.def("search",
        [](const py::sequence& memories, const py::object& queries, int64_t k, const std::string& score, bool mean,
           float scale, float eps) {
          const char* op = "linattn.search";
          const Queries q = queries_arg(queries, op);
          // Live memories are viewed under their shared locks, held until the search ends.
          std::vector<MemoryView> live;
          std::vector<std::shared_lock<std::shared_mutex>> locks;
          std::vector<const MemoryView*> views;
          live.reserve(memories.size());
          for (const py::handle item : memories) {
            if (py::isinstance<PyMemoryView>(item)) {
              views.push_back(&item.cast<const PyMemoryView&>().view);
            } else if (py::isinstance<PyMemory>(item)) {
              const auto& mem = item.cast<const PyMemory&>();
              locks.emplace_back(mem.mutex);
              live.push_back(mem.memory.view());
              views.push_back(&live.back());
            } else {
              throw py::type_error(std::string(op) + ": argument 'memories': expected Memory or MemoryView items, got " +
                                   std::string(py::str(py::type::of(item).attr("__name__"))));
            }
          }
          const SearchOptions o = search_options(k, score, mean, scale, eps, op);
          SearchResults r;
          {
            py::gil_scoped_release nogil;
            use_configured_threads();
            r = search(views, q.rows, o);
          }
          return search_results(r, q.single);
        },
        py::arg("memories"), py::arg("queries"), py::kw_only(), py::arg("k") = 10, py::arg("score") = "quadratic",
        py::arg("mean") = false, py::arg("scale") = 1.f, py::arg_v("eps", 1e-6f, "1e-06"),
        (std::string("Search a list of memories (Memory or MemoryView). ") + kSearchDoc).c_str());

  m.def("open_memory",
        [](const std::string& path) {
          py::gil_scoped_release nogil;
          return PyMemoryView{open_memory(path), nullptr};
        },
        py::arg("path"),
        "Maps a .lam file read-only and validates it (FormatError naming the problem); lookups read the "
        "mapped bytes, so opening costs no copy.");

  m.def("compress",
        [](const py::object& memory, const py::object& rank, const py::object& max_error) {
          const char* op = "linattn.compress";
          if (rank.is_none() == max_error.is_none())
            throw ArgumentError(op, rank.is_none() ? "rank" : "max_error", "give exactly one of rank and max_error");
          MemoryView scratch({}, nullptr, nullptr, nullptr, nullptr);
          std::shared_lock<std::shared_mutex> lock;
          const MemoryView& v = view_arg(memory, op, scratch, lock);
          CompressOptions o;
          if (!rank.is_none()) o.rank = rank.cast<int64_t>();
          if (!max_error.is_none()) o.max_error = max_error.cast<double>();
          py::gil_scoped_release nogil;
          return view_owning(compress_to_bytes(v, o), "compressed memory");
        },
        py::arg("memory"), py::kw_only(), py::arg("rank") = py::none(), py::arg("max_error") = py::none(),
        "Rank-r compression of a symmetric memory, M ~ U diag(lambda) U^T from its r eigenpairs of largest "
        "magnitude: give rank, or max_error for the smallest rank whose relative Frobenius error is at most it. "
        "Returns a MemoryView (its compression_error says what was lost) that can be saved or appended.");
}

void bind_memory_class(py::module_& m) {
  py::class_<PyMemory>(m, "Memory", R"(A sequence encoded once into a fixed-size state, queried at a cost independent of its length.

    M = sum_t g_t phi(k_t) v_t^T  [dk, dv]    z = sum_t g_t phi(k_t)  [dk]    n = tokens
    lookup(q) = scale * M^T phi(q)  [/ n with mean]  [/ (z . phi(q) + eps) when normalize]

Memory(dk, dv=None, *, symmetric=False, normalize=False, feature_map="identity", gated=False, dtype="f32",
       kind="linear")

dv defaults to dk. symmetric: keys are the values (the paper's C = H^T H); write takes keys only
and the stored form keeps the upper triangle. gated: write takes a weight g_t per token.
kind: "linear", or a relative: "galerkin" (rows layer-normalised on write; look up with
mean=True for Galerkin attention), "content-lambda" (lambda = softmax over positions of K,
transposed, times V; lookups answer lambda^T q) or "kslot" (keys and queries are K slot scores,
softmax-ed over the slots).
dtype ("f32" or "bf16") is how the memory is stored (save, to_bytes, banks); a live memory
accumulates in float32. Safe to share between threads: lookups run concurrently, changes
one at a time.)")
      .def(py::init([](int64_t dk, std::optional<int64_t> dv, bool symmetric, bool normalize,
                       const std::string& feature_map, bool gated, const std::string& dtype, const std::string& kind) {
             const char* op = "linattn.Memory";
             const auto parsed = parse_memory_kind(kind);
             if (!parsed) throw ArgumentError(op, "kind", "unknown kind '" + kind + "' (linear, galerkin, content-lambda, kslot)");
             MemoryConfig c{.key_dim = dk, .value_dim = dv.value_or(dk), .feature_map = feature_map_arg(feature_map, op),
                            .normalize = normalize, .gated = gated, .symmetric = symmetric, .dtype = dtype_arg(dtype, op),
                            .kind = *parsed};
             return std::make_unique<PyMemory>(Memory(c));
           }),
           py::arg("dk"), py::arg("dv") = py::none(), py::kw_only(), py::arg("symmetric") = false,
           py::arg("normalize") = false, py::arg("feature_map") = "identity", py::arg("gated") = false,
           py::arg("dtype") = "f32", py::arg("kind") = "linear")
      .def("write",
           [](PyMemory& self, const py::object& keys, const py::object& values, const py::object& gates) {
             const char* op = "linattn.Memory.write";
             const auto k = input<2>(keys, op, "keys");
             const auto v = optional_input<2>(values, op, "values");
             const auto g = optional_input<1>(gates, op, "gates");
             py::gil_scoped_release nogil;
             use_configured_threads();
             std::unique_lock lock(self.mutex);
             self.memory.write(k.view, v.view, g.view);
           },
           py::arg("keys"), py::arg("values") = py::none(), py::arg("gates") = py::none(),
           "Adds T tokens: keys [T, dk], values [T, dv] (omitted when symmetric), gates [T] (exactly when gated). "
           "Writing in pieces equals writing at once. Values that are not finite, or whose products would overflow "
           "float32, raise ArgumentError and leave the memory unchanged.")
      .def("lookup",
           [](const PyMemory& self, const py::object& queries, bool mean, float scale, float eps) {
             const Queries q = queries_arg(queries, "linattn.Memory.lookup");
             return lookup_into(q, self.memory.config().value_dim, [&](CView2 rows, View2 out) {
               std::shared_lock lock(self.mutex);
               self.memory.lookup(rows, out, lookup_options(mean, scale, eps));
             });
           },
           py::arg("queries"), py::kw_only(), py::arg("mean") = false, py::arg("scale") = 1.f, py::arg_v("eps", 1e-6f, "1e-06"),
           "queries [m, dk] -> [m, dv] (one query [dk] -> [dv]): scale * M^T phi(q) [/ n with mean] "
           "[/ (z . phi(q) + eps) when normalising]. mean and normalize are exclusive.")
      .def("merge",
           [](PyMemory& self, const PyMemory& other) {
             py::gil_scoped_release nogil;
             if (&self == &other) {
               std::unique_lock lock(self.mutex);
               self.memory.merge(self.memory);
               return;
             }
             std::scoped_lock lock(self.mutex, other.mutex);
             self.memory.merge(other.memory);
           },
           py::arg("other"), "Adds a memory encoded apart with the same configuration: shards merged equal the whole.")
      .def("decay",
           [](PyMemory& self, float gamma) {
             py::gil_scoped_release nogil;
             std::unique_lock lock(self.mutex);
             self.memory.decay(gamma);
           },
           py::arg("gamma"), "Exponential forgetting: M, z *= gamma, 0 <= gamma <= 1 (the token count is unchanged).")
      .def("snapshot",
           [](const PyMemory& self) {
             std::shared_lock lock(self.mutex);
             return std::make_unique<PyMemory>(self.memory.snapshot());
           },
           "A copy of the current state (dk * dv numbers), to restore later.")
      .def("restore",
           [](PyMemory& self, const PyMemory& snapshot) {
             if (&self == &snapshot) return;
             std::scoped_lock lock(self.mutex, snapshot.mutex);
             self.memory.restore(snapshot.memory);
           },
           py::arg("snapshot"), "Back to a snapshot of a memory with the same configuration.")
      .def("reset",
           [](PyMemory& self) {
             std::unique_lock lock(self.mutex);
             self.memory.reset();
           },
           "Back to empty.")
      .def("save",
           [](const PyMemory& self, const std::string& path) {
             py::gil_scoped_release nogil;
             std::shared_lock lock(self.mutex);
             save_memory(self.memory, path);
           },
           py::arg("path"),
           "Writes the .lam file in the configured dtype, atomically: a temporary file, fsync, rename, so a crash "
           "leaves the old file or the new one.")
      .def("to_bytes",
           [](const PyMemory& self) {
             std::shared_lock lock(self.mutex);
             return bytes_of(serialize(self.memory));
           },
           "The stored (.lam) form, as bytes.")
      .def_property_readonly("key_dim", [](const PyMemory& s) { return s.memory.config().key_dim; })
      .def_property_readonly("value_dim", [](const PyMemory& s) { return s.memory.config().value_dim; })
      .def_property_readonly("tokens", [](const PyMemory& s) {
        std::shared_lock lock(s.mutex);
        return s.memory.tokens();
      }, "Tokens written (merges add theirs).")
      .def_property_readonly("dtype", [](const PyMemory& s) { return std::string(to_string(s.memory.config().dtype)); })
      .def_property_readonly("feature_map", [](const PyMemory& s) { return std::string(to_string(s.memory.config().feature_map)); })
      .def_property_readonly("normalize", [](const PyMemory& s) { return s.memory.config().normalize; })
      .def_property_readonly("gated", [](const PyMemory& s) { return s.memory.config().gated; })
      .def_property_readonly("symmetric", [](const PyMemory& s) { return s.memory.config().symmetric; })
      .def_property_readonly("kind", [](const PyMemory& s) { return std::string(to_string(s.memory.config().kind)); })
      .def_property_readonly("state", [](const PyMemory& s) {
        std::shared_lock lock(s.mutex);
        const CView2 st = s.memory.state();
        return copy_of(st.data, {static_cast<py::ssize_t>(st.shape[0]), static_cast<py::ssize_t>(st.shape[1])});
      }, "A float32 copy of M [dk, dv].")
      .def_property_readonly("normalizer", [](const PyMemory& s) -> py::object {
        std::shared_lock lock(s.mutex);
        const auto z = s.memory.normalizer();
        if (z.empty()) return py::none();
        return copy_of(z.data(), {static_cast<py::ssize_t>(z.size())});
      }, "A float32 copy of z [dk], or None unless normalize.")
      .def(py::pickle(
          // The live fp32 state itself, not the stored form: a bf16-configured memory keeps
          // every bit of its fp32 accumulation across pickling (multiprocessing, workers).
          [](const PyMemory& s) {
            std::shared_lock lock(s.mutex);
            const MemoryConfig& c = s.memory.config();
            const CView2 st = s.memory.state();
            const auto z = s.memory.normalizer();
            return py::make_tuple(1, c.key_dim, c.value_dim, static_cast<int>(c.feature_map), c.normalize, c.gated,
                                  c.symmetric, static_cast<int>(c.dtype), s.memory.tokens(),
                                  py::bytes(reinterpret_cast<const char*>(st.data),
                                            static_cast<size_t>(st.numel()) * sizeof(float)),
                                  py::bytes(reinterpret_cast<const char*>(z.data()), z.size() * sizeof(float)),
                                  static_cast<int>(c.kind));
          },
          [](const py::tuple& t) {
            const char* op = "linattn.Memory.__setstate__";
            // 11 fields before the kinds existed (a linear memory), 12 since.
            if ((t.size() != 11 && t.size() != 12) || t[0].cast<int>() != 1)
              throw ArgumentError(op, "state", "not a pickled linattn.Memory");
            MemoryConfig c{.key_dim = t[1].cast<int64_t>(), .value_dim = t[2].cast<int64_t>(),
                           .feature_map = static_cast<FeatureMap>(t[3].cast<int>()), .normalize = t[4].cast<bool>(),
                           .gated = t[5].cast<bool>(), .symmetric = t[6].cast<bool>(),
                           .dtype = static_cast<DType>(t[7].cast<int>()),
                           .kind = t.size() == 12 ? static_cast<MemoryKind>(t[11].cast<int>()) : MemoryKind::linear};
            validate(c, op);
            auto floats = [&](const py::handle& h) {
              const std::string_view b = h.cast<py::bytes>();
              std::vector<float> v(b.size() / sizeof(float));
              std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
              return v;
            };
            return std::make_unique<PyMemory>(Memory::from_state(c, floats(t[9]), floats(t[10]), t[8].cast<int64_t>()));
          }))
      .def("__repr__", [](const PyMemory& s) {
        std::shared_lock lock(s.mutex);
        return "linattn.Memory(" + config_text(s.memory.config()) + ", tokens=" + std::to_string(s.memory.tokens()) + ")";
      });
}

void bind_bank(py::module_& m) {
  py::class_<PyBank>(m, "Bank", R"(One file holding many named memories, appended to crash-safely and queried all at once.

Bank.create(path) makes a new bank (FileExistsError-like FormatError if path exists);
Bank.open(path) or Bank(path) opens one, mapped: memories are read from the file, not copied.
Appends from other processes become visible after reload(). Safe to share between threads.)")
      .def(py::init([](const std::string& path, bool verify) {
             py::gil_scoped_release nogil;
             return std::make_unique<PyBank>(Bank::open(path, verify));
           }),
           py::arg("path"), py::arg("verify") = true)
      .def_static("open",
                  [](const std::string& path, bool verify) {
                    py::gil_scoped_release nogil;
                    return std::make_unique<PyBank>(Bank::open(path, verify));
                  },
                  py::arg("path"), py::arg("verify") = true,
                  "Opens and validates a bank (every record's checksum when verify).")
      .def_static("create",
                  [](const std::string& path) {
                    py::gil_scoped_release nogil;
                    Bank::create(path);
                    return std::make_unique<PyBank>(Bank::open(path));
                  },
                  py::arg("path"), "Creates an empty bank (never replacing an existing file) and opens it.")
      .def("append",
           [](PyBank& self, const std::string& name, const py::object& memory) {
             auto bytes = stored_bytes(memory, "linattn.Bank.append");
             py::gil_scoped_release nogil;
             std::unique_lock lock(self.mutex);
             self.bank.append(name, bytes);
           },
           py::arg("name"), py::arg("memory"),
           "Appends a Memory (or a MemoryView that owns its bytes) under a new unique name, committed crash-safely.")
      .def("append_all",
           [](PyBank& self, const py::object& entries) {
             std::vector<std::pair<std::string, std::vector<std::byte>>> all;
             const py::iterable items =
                 py::isinstance<py::dict>(entries) ? py::iterable(entries.attr("items")()) : py::iterable(entries.cast<py::object>());
             for (const py::handle item : items) {
               const auto pair = item.cast<py::tuple>();
               if (pair.size() != 2) throw ArgumentError("linattn.Bank.append_all", "entries", "expected (name, memory) pairs");
               all.emplace_back(pair[0].cast<std::string>(), stored_bytes(pair[1], "linattn.Bank.append_all"));
             }
             py::gil_scoped_release nogil;
             std::unique_lock lock(self.mutex);
             self.bank.append_all(all);
           },
           py::arg("entries"),
           "Appends many memories ({name: memory} or (name, memory) pairs) in one commit: all or none.")
      .def("reload",
           [](PyBank& self) {
             py::gil_scoped_release nogil;
             std::unique_lock lock(self.mutex);
             self.bank = Bank::open(self.bank.path());
           },
           "Reopens the file, picking up memories other processes appended.")
      .def("lookup",
           [](const PyBank& self, const py::object& queries, const py::object& names, bool mean, float scale, float eps) {
             const char* op = "linattn.Bank.lookup";
             const Queries q = queries_arg(queries, op);
             std::shared_lock lock(self.mutex);
             const auto sel = selection_arg(self, names, op);
             const int64_t n = sel.empty() ? self.bank.size() : static_cast<int64_t>(sel.size());
             const int64_t rows = q.rows.shape[0], dv = self.bank.value_dim();
             std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n)};
             if (!q.single) shape.push_back(static_cast<py::ssize_t>(rows));
             shape.push_back(static_cast<py::ssize_t>(dv));
             FloatArray out(shape);
             {
               py::gil_scoped_release nogil;
               use_configured_threads();
               self.bank.lookup(q.rows, View3::contiguous(out.mutable_data(), {n, rows, dv}), sel,
                                lookup_options(mean, scale, eps));
             }
             return out;
           },
           py::arg("queries"), py::arg("names") = py::none(), py::kw_only(), py::arg("mean") = false,
           py::arg("scale") = 1.f, py::arg_v("eps", 1e-6f, "1e-06"),
           "queries [m, dk] against every memory, or those named (names or indices): [memories, m, dv] "
           "(one query [dk]: [memories, dv]).")
      .def("search",
           [](const PyBank& self, const py::object& queries, int64_t k, const py::object& names, const std::string& score,
              bool mean, float scale, float eps) {
             const char* op = "linattn.Bank.search";
             const Queries q = queries_arg(queries, op);
             std::shared_lock lock(self.mutex);
             const auto sel = selection_arg(self, names, op);
             const SearchOptions o = search_options(k, score, mean, scale, eps, op);
             SearchResults r;
             {
               py::gil_scoped_release nogil;
               use_configured_threads();
               r = self.bank.search(q.rows, o, sel);
             }
             return search_results(r, q.single);
           },
           py::arg("queries"), py::kw_only(), py::arg("k") = 10, py::arg("names") = py::none(),
           py::arg("score") = "quadratic", py::arg("mean") = false, py::arg("scale") = 1.f,
           py::arg_v("eps", 1e-6f, "1e-06"),
           (std::string("Search the bank (or the memories named). Indices are bank positions (bank.names[i]). ") +
            kSearchDoc).c_str())
      .def("__len__", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        return s.bank.size();
      })
      .def("__contains__", [](const PyBank& s, const std::string& name) {
        std::shared_lock lock(s.mutex);
        return s.bank.find(name).has_value();
      })
      .def("__getitem__", [](const PyBank& s, const py::object& key) {
        std::shared_lock lock(s.mutex);
        int64_t i = 0;
        if (py::isinstance<py::str>(key)) {
          const auto name = key.cast<std::string>();
          const auto found = s.bank.find(name);
          if (!found) throw py::key_error(name);
          i = *found;
        } else {
          i = key.cast<int64_t>();
          if (i < 0) i += s.bank.size();
          if (i < 0 || i >= s.bank.size()) throw py::index_error("bank index " + std::to_string(key.cast<int64_t>()) + " out of range");
        }
        return PyMemoryView{s.bank.memory(i), nullptr};
      }, py::arg("key"), "The memory with this name (or index), as a MemoryView of the mapped file.")
      .def_property_readonly("names", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        std::vector<std::string> names;
        for (int64_t i = 0; i < s.bank.size(); ++i) names.push_back(s.bank.name(i));
        return names;
      }, "The memories' names, in append order.")
      .def_property_readonly("path", [](const PyBank& s) { return s.bank.path(); })
      .def_property_readonly("key_dim", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        return s.bank.key_dim();
      }, "The bank's dk (0 until the first append).")
      .def_property_readonly("value_dim", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        return s.bank.value_dim();
      })
      .def_property_readonly("uncommitted_bytes", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        return s.bank.uncommitted_bytes();
      }, "Bytes of an interrupted append past the committed end (overwritten by the next append).")
      .def("__repr__", [](const PyBank& s) {
        std::shared_lock lock(s.mutex);
        return "linattn.Bank('" + s.bank.path() + "', memories=" + std::to_string(s.bank.size()) + ")";
      });
}

}  // namespace

void bind_memory(py::module_& m) {
  bind_memory_class(m);
  bind_memory_view(m);
  bind_bank(m);
}

}  // namespace linattn::python
