// Threading for kernels: one OpenMP pool (the same one oneDNN uses), sized by the caller.
#pragma once

#include <cstdint>
#include <functional>

namespace linattn {

// Threads used by linattn kernels; defaults to OMP_NUM_THREADS or the number of cores.
int num_threads();
// Sets the thread count for later calls (n >= 1).
void set_num_threads(int n);

namespace kernels {

// Runs body(job, thread) for job in [0, jobs), spread over the pool with dynamic scheduling.
// thread is in [0, num_threads()) and indexes per-thread scratch. Exceptions thrown by body are
// rethrown on the calling thread (the first one wins) after every worker has stopped.
void parallel_for(int64_t jobs, const std::function<void(int64_t job, int thread)>& body);

}  // namespace kernels
}  // namespace linattn
