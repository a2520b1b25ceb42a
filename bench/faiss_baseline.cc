// linattn-bench-faiss: the FAISS baseline of `linattn bench`'s search section. Retrieval without
// fixed-size memories keeps every document's hidden states (T x d) and searches them with an
// exact inner-product index; this times FAISS's IndexFlatIP doing that for the documents the
// search section's memories were written from. A program of its own, run by `linattn bench`,
// so that the linattn tool never links FAISS and the BLAS it brings. Prints one JSON array.
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"

// OpenBLAS's own thread count: FAISS's searches of 20 queries or more run its sgemm.
extern "C" void openblas_set_num_threads(int threads);

int main(int argc, char** argv) {
  CLI::App app{"FAISS IndexFlatIP over documents' hidden states: the search baseline of linattn bench"};
  bool quick = false;
  int threads = 1;
  int64_t documents = 16384;
  app.add_flag("--quick", quick, "a small run (128 documents, short timings)");
  app.add_option("--threads", threads, "threads for FAISS (OpenMP) and its BLAS")->check(CLI::Range(1, 1024));
  app.add_option("--documents", documents, "documents (64 states of d = 128 each)")->check(CLI::Range(1, 1 << 22));
  CLI11_PARSE(app, argc, argv);
  if (quick) documents = 128;
  using linattn::bench::random_floats;
  const int64_t d = 128, per_doc = 64;
  // The rows the search section writes into every memory (seed 21), each document its own
  // copy, scaled a little so that no two are equal.
  const auto rows = random_floats(per_doc * d, 21);
  std::vector<float> states(static_cast<size_t>(documents * per_doc * d));
  for (int64_t j = 0; j < documents; ++j)
    for (int64_t i = 0; i < per_doc * d; ++i)
      states[static_cast<size_t>(j * per_doc * d + i)] = rows[static_cast<size_t>(i)] * (1.f + 1e-3f * static_cast<float>(j % 97));
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  faiss::IndexFlatIP index(d);
  index.add(documents * per_doc, states.data());
  nlohmann::json out = nlohmann::json::array();
  for (const int64_t m : {int64_t{1}, int64_t{64}}) {
    const auto q = random_floats(m * d, 22);
    std::vector<float> distances(static_cast<size_t>(m * 10));
    std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(m * 10));
    const linattn::bench::Timing t = linattn::bench::time_it(
        [&] { index.search(m, q.data(), 10, distances.data(), labels.data()); }, quick ? 0.03 : 0.5);
    out.push_back({{"queries", m},
                   {"documents", documents},
                   {"states_per_document", per_doc},
                   {"seconds", t.median_s},
                   {"min_seconds", t.min_s},
                   {"reps", t.reps},
                   {"flops", 2.0 * static_cast<double>(documents * per_doc * m * d)},
                   {"bytes", 4.0 * static_cast<double>(documents * per_doc * d)},
                   {"bytes_per_document", 4 * per_doc * d},
                   {"faiss_version", std::to_string(FAISS_VERSION_MAJOR) + "." + std::to_string(FAISS_VERSION_MINOR) + "." +
                                         std::to_string(FAISS_VERSION_PATCH)}});
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
