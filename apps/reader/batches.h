// Reader examples as padded tensors, and length-sorted batches.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "dataset.h"
#include "model.h"

namespace linattn::reader {

// One padded batch of examples[indices]. The candidates are an example's own (CNN: the
// document's entities), else every answer id >= 2 (0 and 1 are the answer vocabulary's padding
// and unknown, never predicted; an unknown answer counts as wrong).
ReaderBatch make_batch(const std::vector<Example>& examples, const std::vector<int64_t>& indices, int64_t answer_count);

// Batches of `size` indices, similar story lengths together (the authors: sorted by length within
// groups of 20 batches), in an order that depends only on `seed`.
std::vector<std::vector<int64_t>> length_sorted_batches(const std::vector<Example>& examples, int64_t size,
                                                        uint64_t seed);

// Consecutive batches of `size` (evaluation order).
std::vector<std::vector<int64_t>> sequential_batches(int64_t count, int64_t size);

}  // namespace linattn::reader
