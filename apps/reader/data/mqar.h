// MQAR, multi-query associative recall (Arora et al. 2023, "Zoology"): a synthetic recall task
// for fixed-size memories. A sequence of length L starts with n key-value pairs k1 v1 ... kn vn
// (keys drawn without replacement from [1, V/2), values from [V/2, V)); every key then appears
// once more, as a query, at a later position, the gaps drawn with probability proportional to
// a i^(a-1) (a = 0.01: mostly short); other positions hold 0. The target at a query position is
// that key's value; elsewhere it is kIgnore.
#pragma once

#include <cstdint>
#include <vector>

namespace linattn::reader {

struct MqarOptions {
  int64_t vocab = 8192;
  int64_t length = 64;  // L
  int64_t pairs = 4;    // n: needs 2n + 2n <= L
  double power_a = 0.01;
};

struct MqarBatch {
  int64_t examples = 0, length = 0;
  std::vector<int64_t> inputs, targets;  // [examples, length], row-major
};

inline constexpr int64_t kIgnore = -100;

// Deterministic for a given seed. Throws linattn::Error for impossible settings.
MqarBatch generate_mqar(const MqarOptions& options, int64_t examples, uint64_t seed);

}  // namespace linattn::reader
