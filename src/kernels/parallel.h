// Threading for kernels: jobs spread over the one OpenMP pool (linattn/core/threads.h sizes it).
#pragma once

#include <cstdint>
#include <functional>

#include "linattn/core/threads.h"

namespace linattn::kernels {

// Runs body(job, thread) for job in [0, jobs), spread over the pool with dynamic scheduling.
// thread is in [0, num_threads()) and indexes per-thread scratch. Exceptions thrown by body are
// rethrown on the calling thread (the first one wins) after every worker has stopped.
void parallel_for(int64_t jobs, const std::function<void(int64_t job, int thread)>& body);

}  // namespace linattn::kernels
