#include "harness.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include <sys/utsname.h>

#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "kernels/simd_probe.h"

namespace linattn::bench {

std::vector<float> random_floats(int64_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> dist(0.f, 0.1f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(g);
  return x;
}

using Clock = std::chrono::steady_clock;

Timing time_it(const std::function<void()>& f, double budget_s, int min_reps) {
  f();  // warm-up: JIT, page faults, caches
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int>(t.size()) < min_reps ||
         std::chrono::duration<double>(Clock::now() - start).count() < budget_s) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (t.size() > 100000) break;
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), static_cast<int>(t.size())};
}

Roofs measure_roofs(bool quick) {
  Roofs r;
  r.isa = kernels::simd::target_name();
  r.threads = num_threads();
  const int64_t iters = quick ? 2'000'000 : 20'000'000;
  double flops = 0;
  Timing t = time_it([&] { flops = kernels::simd::fma_loop(iters); }, quick ? 0.05 : 0.3, 3);
  r.peak_flops_core = flops / t.min_s;
  t = time_it([&] { kernels::parallel_for(r.threads, [&](int64_t, int) { kernels::simd::fma_loop(iters); }); },
              quick ? 0.05 : 0.3, 3);
  r.peak_flops_threads = flops * r.threads / t.min_s;
  if (kernels::simd::has_avx512_bf16()) {
    double dot_flops = 0;
    t = time_it([&] { dot_flops = kernels::simd::bf16_dot_loop(iters); }, quick ? 0.05 : 0.3, 3);
    r.bf16_dot_flops_core = dot_flops / t.min_s;
  }
  const size_t bytes = quick ? (64u << 20) : (256u << 20);
  std::vector<char> a(bytes, 1), b(bytes, 2);
  t = time_it([&] { std::memcpy(b.data(), a.data(), bytes); }, quick ? 0.05 : 0.5, 3);
  r.memcpy_bytes_s = 2.0 * static_cast<double>(bytes) / t.median_s;
  return r;
}

double read_bandwidth(int64_t bytes, bool quick, int threads) {
  static std::map<std::pair<int64_t, int>, double> memo;
  // The working set itself, rounded up to whole pages: a power of two would move a 33 KiB state,
  // which lives in a 48 KiB L1, to a 64 KiB set read from L2 (a roof 1.3x too low on Zen 5).
  const int64_t size = std::min<int64_t>((std::max<int64_t>(bytes, 1) + 4095) / 4096 * 4096, int64_t{512} << 20);
  threads = threads < 1 ? num_threads() : std::min(threads, num_threads());
  if (auto it = memo.find({size, threads}); it != memo.end()) return it->second;
  std::vector<float> x(static_cast<size_t>(size / 4), 1.f);
  const int64_t n = static_cast<int64_t>(x.size());
  // Enough passes per timed run to be measurable for small, cache-resident sets.
  const int passes = static_cast<int>(std::max<int64_t>(1, (int64_t{16} << 20) / size));
  // Every thread reads its own slice, as the kernels timed beside it do with several threads
  // (one thread alone cannot draw the machine's whole DRAM bandwidth), all its passes within one
  // dispatch: one per pass would time the pool's wake-ups for a cache-sized set.
  const int64_t slice = (n + threads - 1) / threads;
  std::vector<float> sums(static_cast<size_t>(threads));
  volatile float sink = 0;
  const Timing t = time_it([&] {
    kernels::parallel_for(threads, [&](int64_t i, int) {
      const int64_t begin = i * slice, end = std::min(n, begin + slice);
      float s = 0;
      for (int p = 0; p < passes && end > begin; ++p) s += kernels::simd::sum(x.data() + begin, end - begin);
      sums[static_cast<size_t>(i)] = s;
    });
    sink = sink + sums[0];
  }, quick ? 0.02 : 0.1, 3);
  return memo[{size, threads}] = static_cast<double>(size) * passes / t.min_s;
}

Roof roof(double flops, double bytes, double peak_flops, bool quick, int threads) {
  const double compute = flops / peak_flops;
  const double memory = bytes / read_bandwidth(static_cast<int64_t>(bytes), quick, threads);
  return compute >= memory ? Roof{compute, "compute"} : Roof{memory, "memory"};
}

std::map<std::string, std::string> machine_description() {
  std::map<std::string, std::string> m;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);)
    if (line.rfind("model name", 0) == 0) {
      m["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m["hardware_threads"] = std::to_string(std::thread::hardware_concurrency());
  m["simd_target"] = kernels::simd::target_name();
  return m;
}

}  // namespace linattn::bench
