// Answering from stored representations, the paper's point: a linear or gated linear reader
// encodes each story once into a fixed-size memory (d x d, stored packed: d(d+1)/2 numbers, in a
// linattn bank), and questions are answered later by lookups on it, without re-reading the
// story. Softmax attention must instead keep every hidden state (T x d) and scan them per
// question; no attention keeps the last state only (d).
#pragma once

#include <string>
#include <vector>

#include "checkpoint.h"
#include "linattn/core/types.h"
#include "linattn/memory/memory.h"

namespace linattn::reader {

// The Memory lookup that reads a stored memory of `model` as its in-graph read-out does.
LookupOptions lookup_options(const Reader& model);

// The bank entry name of an example's story: "<story id>:<tokens>" (a story prefix; every
// question of bAbI reads the statements before it).
std::string story_key(const Example& e);

struct EncodeReport {
  int64_t stories = 0;
  double bytes_per_story = 0;  // as stored in the bank (record + .lam header + payload)
  double payload_per_story = 0;  // the numbers alone
  double seconds = 0;
};

// Stores the fixed-size memory of every distinct story of `examples` (c.best's weights) in a new
// bank at `bank_path` (an error if it exists). Linear and gated linear readers only.
EncodeReport encode_stories(Checkpoint& c, const std::vector<Example>& examples, const std::string& bank_path,
                            DType dtype = DType::f32);

struct ServeReport {
  std::string mechanism, store;  // what was stored, and where
  int64_t stories = 0, questions = 0;
  int64_t correct = 0;
  int64_t agree = 0;             // answers equal to the in-graph forward pass
  double max_logit_difference = 0;  // against the in-graph forward pass
  double bytes_per_story = 0;    // the stored representation (payload numbers)
  double lookup_us = 0;          // per question: the read-out from the stored representation
  double questions_per_second = 0;  // one question at a time: question encoder + read-out + output
};

// Answers every example one at a time by lookups on the memories in `bank_path` (made by
// encode_stories), and checks the answers against the in-graph forward pass.
ServeReport answer_from_bank(Checkpoint& c, const std::vector<Example>& examples, const std::string& bank_path);

// The same with every mechanism's own stored form held in RAM: the last state (none), every
// hidden state (softmax), the d x d memory (linear, gated). `model` need not be trained when only
// the cost is wanted.
ServeReport answer_from_states(Reader& model, const std::vector<Example>& examples, int64_t answer_count);

}  // namespace linattn::reader
