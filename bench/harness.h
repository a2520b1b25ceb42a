// Measurement for `linattn bench`: timing by repetition with a warm-up, and the machine's roofs
// measured on the spot (never assumed): an FMA loop for compute, streaming reads for bandwidth.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace linattn::bench {

struct Timing {
  double median_s = 0, min_s = 0;
  int reps = 0;
};

// Runs f once to warm up, then until `budget_s` has passed and at least `min_reps` runs;
// median and minimum of the per-run times.
Timing time_it(const std::function<void()>& f, double budget_s, int min_reps = 5);

struct Roofs {
  double peak_flops_core = 0;     // FMA loop, one thread
  double peak_flops_threads = 0;  // FMA loop on every thread of the pool
  double memcpy_bytes_s = 0;      // large memcpy, bytes read + written per second
  double bf16_dot_flops_core = 0; // VDPBF16PS loop, one thread (0 without AVX512-BF16)
  std::string isa;                // the SIMD target in use
  int threads = 1;
};

// n numbers from N(0, 0.1), the same for the same seed (every benchmark's inputs).
std::vector<float> random_floats(int64_t n, unsigned seed);

// Measures the compute roofs and memcpy bandwidth (about a second; less when quick).
Roofs measure_roofs(bool quick);

// Read bandwidth (bytes/s) for a working set of `bytes`, read repeatedly by `threads` threads of
// the pool (each its own slice; 0: all of them): cache-resident when it fits, DRAM when not.
// Measured at the working set's own size (whole pages), memoised by size and thread count.
double read_bandwidth(int64_t bytes, bool quick, int threads = 0);

// A kernel's roof: the larger of its compute time at peak and its traffic time at the read
// bandwidth of its working set. bound is "compute" or "memory".
struct Roof {
  double seconds = 0;
  std::string bound;
};
// `threads`: how many threads the kernel runs on (one for a single lookup, whatever the pool).
Roof roof(double flops, double bytes, double peak_flops, bool quick, int threads);

// The CPU model line from /proc/cpuinfo, the kernel and the core count.
std::map<std::string, std::string> machine_description();

}  // namespace linattn::bench
