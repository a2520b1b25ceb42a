// The thread count of linattn's kernels: one OpenMP pool (the same one oneDNN uses).
#pragma once

namespace linattn {

// Threads used by linattn kernels; defaults to OMP_NUM_THREADS or the number of cores.
int num_threads();
// Sets the thread count for later calls (n >= 1).
void set_num_threads(int n);

}  // namespace linattn
