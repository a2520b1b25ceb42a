// LibTorch multiplies through Debian's OpenBLAS, which picks its kernels for the CPU when it
// loads. On AVX-512 CPUs it must be told OPENBLAS_CORETYPE=SKYLAKEX (measured: about 5x
// faster GEMMs); elsewhere (this project's AMD Zen 3 machine, for one) its own detection is right
// and SKYLAKEX would select instructions the CPU lacks.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace linattn::apps {

// Call first thing in main: when the CPU has AVX-512 and OPENBLAS_CORETYPE is unset, sets it and
// starts the program again (OpenBLAS reads it before main runs). Returns only when nothing needs
// doing, or when the restart failed (then OpenBLAS keeps its own choice).
inline void select_openblas_core(char** argv) {
  if (__builtin_cpu_supports("avx512f") && std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
    execv("/proc/self/exe", argv);
    std::perror("re-exec with OPENBLAS_CORETYPE");
  }
}

}  // namespace linattn::apps
