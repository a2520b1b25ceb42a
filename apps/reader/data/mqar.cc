#include "mqar.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "linattn/core/error.h"

namespace linattn::reader {

MqarBatch generate_mqar(const MqarOptions& o, int64_t examples, uint64_t seed) {
  const int64_t context = 2 * o.pairs, space = (o.length - context) / 2;
  if (o.pairs < 1 || o.vocab < 4 || examples < 0 || !(o.power_a > 0))
    throw Error("MQAR: needs pairs >= 1, vocab >= 4, examples >= 0 and a > 0");
  if (space < o.pairs)
    throw Error("MQAR: a sequence of " + std::to_string(o.length) + " cannot hold " + std::to_string(o.pairs) +
                " pairs and their queries (needs length >= 4 * pairs)");
  if (o.pairs > o.vocab / 2 - 1) throw Error("MQAR: more pairs than distinct keys in the vocabulary");
  MqarBatch batch;
  batch.examples = examples;
  batch.length = o.length;
  batch.inputs.assign(static_cast<size_t>(examples * o.length), 0);
  batch.targets.assign(batch.inputs.size(), kIgnore);
  // Gap weights a i^(a-1), i = 1..space (normalised below by the sampler).
  std::vector<double> weight(static_cast<size_t>(space));
  for (int64_t i = 0; i < space; ++i) weight[static_cast<size_t>(i)] = o.power_a * std::pow(double(i + 1), o.power_a - 1);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> keys(static_cast<size_t>(o.vocab / 2 - 1));
  for (int64_t e = 0; e < examples; ++e) {
    int64_t* in = &batch.inputs[static_cast<size_t>(e * o.length)];
    int64_t* tg = &batch.targets[static_cast<size_t>(e * o.length)];
    std::iota(keys.begin(), keys.end(), 1);  // keys from [1, V/2)
    std::shuffle(keys.begin(), keys.end(), rng);
    std::uniform_int_distribution<int64_t> value(o.vocab / 2, o.vocab - 1);
    std::vector<double> w = weight;
    for (int64_t p = 0; p < o.pairs; ++p) {
      const int64_t k = keys[static_cast<size_t>(p)], v = value(rng);
      in[2 * p] = k;
      in[2 * p + 1] = v;
      // A gap without replacement, weighted: then the query at context + 2 * gap.
      std::discrete_distribution<int64_t> pick(w.begin(), w.end());
      const int64_t gap = pick(rng);
      w[static_cast<size_t>(gap)] = 0.0;
      in[context + 2 * gap] = k;
      tg[context + 2 * gap] = v;
    }
  }
  return batch;
}

}  // namespace linattn::reader
