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

  std::vector<float> u(static_cast<size_t>(d * rank)), lambda(static_cast<size_t>(rank));
  for (int64_t r = 0; r < rank; ++r) {
    lambda[r] = static_cast<float>(values(order[r]));
    for (int64_t i = 0; i < d; ++i) u[i * rank + r] = static_cast<float>(eig.eigenvectors()(i, order[r]));
  }
  MemoryInfo info = in;
  info.layout = Layout::low_rank;
  info.rank = rank;
  info.compression_error = error(rank);
  std::vector<float> z;
  if (in.config.normalize) z.assign(memory.normalizer_data(), memory.normalizer_data() + d);
  return serialize_low_rank(info, u, lambda, z);
}

MemoryView compress(const MemoryView& memory, const CompressOptions& options) {
  return view_of_bytes(compress_to_bytes(memory, options), "compressed memory");
}

}  // namespace linattn
