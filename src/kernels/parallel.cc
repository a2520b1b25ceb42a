#include "kernels/parallel.h"

#include <omp.h>

#include <exception>
#include <mutex>
#include <stdexcept>

namespace linattn {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("linattn::set_num_threads: n must be >= 1");
  omp_set_num_threads(n);
}

namespace kernels {

void parallel_for(int64_t jobs, const std::function<void(int64_t, int)>& body) {
  if (jobs <= 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(jobs, omp_get_max_threads()));
  if (threads <= 1 || omp_in_parallel()) {
    for (int64_t j = 0; j < jobs; ++j) body(j, 0);
    return;
  }
  std::exception_ptr failure;
  std::mutex failure_mutex;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t j = 0; j < jobs; ++j) {
    try {
      body(j, omp_get_thread_num());
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace kernels
}  // namespace linattn
