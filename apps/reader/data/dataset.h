// A reader data set as ids: stories, questions and answers mapped through vocabularies built on
// the training split. Both bAbI and MQAR end up in this form, so training, evaluation and
// stored-memory answering never care where the data came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "babi.h"
#include "vocabulary.h"

namespace linattn::reader {

struct Example {
  int64_t story_id = 0;           // the story (document) this question reads
  std::vector<int64_t> story;     // word ids of the story up to the question
  std::vector<int64_t> question;  // word ids
  int64_t answer = 0;             // answer id; Vocabulary::kUnknown if never seen in training
};

struct Dataset {
  Vocabulary words, answers;
  std::vector<Example> train, valid, test;
};

// Ids of `tokens`; words never seen map to Vocabulary::kUnknown (counted in *unknown if given).
std::vector<int64_t> to_ids(const Vocabulary& words, const std::vector<std::string>& tokens, int64_t* unknown = nullptr);

// Vocabularies from task.train (every story, question and answer token), then every split as ids.
Dataset babi_dataset(const BabiTask& task);
// Every split through given vocabularies (a trained model's).
Dataset babi_dataset(const BabiTask& task, const Vocabulary& words, const Vocabulary& answers);

// MQAR as reading comprehension: the story is the n key-value pairs k1 v1 ... kn vn, and each
// key is asked once, answered by its value (Arora et al. 2023, docs/math.md; generate_mqar for the key and value
// draws). Words are the decimal token numbers; answers are values only.
struct MqarReaderOptions {
  int64_t pairs = 8;
  int64_t vocab = 512;  // keys from [1, vocab/2), values from [vocab/2, vocab)
  int64_t train_sequences = 2000, valid_sequences = 100, test_sequences = 200;
};
Dataset mqar_dataset(const MqarReaderOptions& options, uint64_t seed);

}  // namespace linattn::reader
