// bAbI examples as padded tensors for the reader, and length-sorted batches.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "babi.h"
#include "model.h"
#include "vocabulary.h"

namespace linattn::reader {

// Adds every story, question and answer token of `examples` (the training set) to the
// vocabularies.
void build_vocabularies(const std::vector<BabiExample>& examples, Vocabulary& words, Vocabulary& answers);

// One padded batch of examples[indices]; unknown words map to Vocabulary::kUnknown, unknown
// answers to id 0 of `answers` (counted wrong).
ReaderBatch make_batch(const std::vector<BabiExample>& examples, const std::vector<int64_t>& indices,
                       const Vocabulary& words, const Vocabulary& answers);

// Batches of `size` indices, similar lengths together (the authors: sorted by length within
// groups of 20 batches), in a seeded random order.
std::vector<std::vector<int64_t>> length_sorted_batches(const std::vector<BabiExample>& examples, int64_t size,
                                                        uint64_t seed);

}  // namespace linattn::reader
