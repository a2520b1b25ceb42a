// A made-up data set in the CNN layout (DIR/questions/{training,validation,test}/*.question; no
// real CNN text): documents of short sentences "@entityA <verb> @entityB in <place> ." with
// random entity numbers, and cloze queries "@entityA <verb> @placeholder in <place>" answered by
// @entityB. Several questions per document (same URL), so that per-document memories are shared.
// For the tests, and for trying the CNN path without the data (`linattn-reader cnn-sample`).
// Deterministic for a seed.
#pragma once

#include <cstdint>
#include <string>

namespace linattn::reader {

struct CnnSampleOptions {
  int train = 48, valid = 12, test = 12;  // questions per split
  int questions_per_document = 3;
  int sentences = 6;                      // per document (about 7 tokens each)
  uint64_t seed = 7;
};

// Writes the files under `dir` (created); FormatError when a file cannot be written.
void write_cnn_sample(const std::string& dir, const CnnSampleOptions& options = {});

}  // namespace linattn::reader
