#include "linattn/memory/compress.h"

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/checks.h"
#include "linattn/memory/memory_file.h"

namespace linattn {

std::vector<std::byte> compress_to_bytes(const MemoryView& memory, const CompressOptions& options) {
  const detail::Checks c("linattn::compress");
  const MemoryInfo& in = memory.info();
  if (!in.config.symmetric) c.fail("memory", "is not symmetric (encode with keys = values, --symmetric)");
  if (in.layout == Layout::low_rank) c.fail("memory", "is already compressed");
  const int64_t d = in.config.key_dim;
  const bool by_rank = options.rank != 0, by_error = options.max_error >= 0.0;
  if (by_rank == by_error) c.fail("options", "set exactly one of rank and max_error");
  if (by_rank && (options.rank < 1 || options.rank > d))
    c.fail("options.rank", "must be in [1, " + std::to_string(d) + "], got " + std::to_string(options.rank));
  if (by_error && !(options.max_error <= 1.0)) c.fail("options.max_error", "must be in [0, 1]");

  // Eigen-decomposition in double: the small eigenvalues decide the error estimate.
  const Memory dense = memory.to_memory();
  Eigen::MatrixXd M(d, d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) M(i, j) = 0.5 * (double(dense.state()(i, j)) + double(dense.state()(j, i)));
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(M);
  if (eig.info() != Eigen::Success) throw Error("linattn::compress: the eigensolver did not converge");
  const Eigen::VectorXd& values = eig.eigenvalues();
  std::vector<int64_t> order(static_cast<size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::abs(values(a)) > std::abs(values(b)); });

  // error(r)^2 = sum of the dropped lambda^2 / sum of all lambda^2.
  double total = 0;
  for (int64_t i = 0; i < d; ++i) total += values(i) * values(i);
  std::vector<double> tail(static_cast<size_t>(d + 1), 0.0);  // tail[r] = sum over order[r..d)
  for (int64_t r = d - 1; r >= 0; --r) tail[r] = tail[r + 1] + values(order[r]) * values(order[r]);
  auto error = [&](int64_t r) { return total > 0 ? std::sqrt(std::max(0.0, tail[r]) / total) : 0.0; };
  int64_t rank = options.rank;
  if (by_error) {
    rank = 1;
    while (rank < d && error(rank) > options.max_error) ++rank;
  }

  // The factors as stored (rounded to bf16 when the memory is bf16).
  auto factors = [&](int64_t r_count, const MemoryInfo& info, const std::vector<float>& z) {
    std::vector<float> u(static_cast<size_t>(d * r_count)), lambda(static_cast<size_t>(r_count));
    for (int64_t r = 0; r < r_count; ++r) {
      lambda[r] = static_cast<float>(values(order[r]));
      for (int64_t i = 0; i < d; ++i) u[i * r_count + r] = static_cast<float>(eig.eigenvectors()(i, order[r]));
    }
    return serialize_low_rank(info, u, lambda, z);
  };
  // The error of what is stored, measured: the stored factors' reconstruction (read back through
  // the lookup of every unit vector) against the symmetric state. The eigenvalues' tail alone
  // misses the rounding of bf16 factors.
  double total_f = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) total_f += M(i, j) * M(i, j);
  std::vector<float> identity(static_cast<size_t>(d * d), 0.f), rebuilt(static_cast<size_t>(d * d));
  for (int64_t i = 0; i < d; ++i) identity[static_cast<size_t>(i * d + i)] = 1.f;
  auto measured_error = [&](int64_t r_count) {
    MemoryInfo raw = in;
    raw.config.normalize = false;  // the state alone, without the normaliser's division
    raw.layout = Layout::low_rank;
    raw.rank = r_count;
    const std::vector<std::byte> bytes = factors(r_count, raw, {});  // the view reads these bytes
    const MemoryView v = parse_memory(bytes, nullptr, "compressed memory");
    v.lookup(CView2::contiguous(identity.data(), {d, d}), View2::contiguous(rebuilt.data(), {d, d}));
    double diff = 0;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) {
        const double e = static_cast<double>(rebuilt[static_cast<size_t>(i * d + j)]) - M(i, j);
        diff += e * e;
      }
    return total_f > 0 ? std::sqrt(diff / total_f) : 0.0;
  };
  double measured = measured_error(rank);
  if (by_error) {
    while (rank < d && measured > options.max_error) measured = measured_error(++rank);
    if (measured > options.max_error)
      c.fail("options.max_error", "cannot be met: the best a " + std::string(to_string(in.config.dtype)) +
                                      " memory reaches is " + std::to_string(measured) + " (rank " +
                                      std::to_string(rank) + ")");
  }

  MemoryInfo info = in;
  info.layout = Layout::low_rank;
  info.rank = rank;
  info.compression_error = measured;
  std::vector<float> z;
  if (in.config.normalize) z.assign(memory.normalizer_data(), memory.normalizer_data() + d);
  return factors(rank, info, z);
}

MemoryView compress(const MemoryView& memory, const CompressOptions& options) {
  return view_of_bytes(compress_to_bytes(memory, options), "compressed memory");
}

}  // namespace linattn
