// A reader data set as ids: stories, questions and answers mapped through vocabularies built on
// the training split. Both bAbI and MQAR end up in this form, so training, evaluation and
// stored-memory answering never care where the data came from.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "babi.h"
#include "cnn.h"
#include "vocabulary.h"

namespace linattn::reader {

struct Example {
  int64_t story_id = 0;           // the story (document) this question reads
  std::vector<int64_t> story;     // word ids of the story up to the question
  std::vector<int64_t> question;  // word ids
  int64_t answer = 0;             // answer id; Vocabulary::kUnknown if never seen in training
  std::vector<int64_t> candidates;  // the answer ids allowed (CNN: the document's entities); empty: all
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

// CNN / Daily Mail cloze QA in the DeepMind layout (cnn.h): the story is the document, the
// question the query with its @placeholder, the answer an entity marker chosen among the
// document's entities (Example::candidates). Entity markers are re-shuffled (shuffle_entities):
// per example in training; per document in validation and test, so that a document's questions
// read one stored memory (Example::story_id numbers the documents). Answers are the markers
// @entity0..@entityR-1, R the most entities of any example read.
struct CnnReaderOptions {
  std::string dir;             // holds questions/{training,validation,test}
  int64_t max_examples = -1;   // per split, the first by file name (-1: every file)
  bool read_training = true;   // false: with given vocabularies, the training split stays empty
};
// Vocabularies from the training split, or the given ones (a trained model's). Progress lines go
// to `log` when it is not null.
Dataset cnn_dataset(const CnnReaderOptions& options, uint64_t seed, const Vocabulary* words = nullptr,
                    const Vocabulary* answers = nullptr, std::FILE* log = nullptr);
// Examples of .question files through a trained model's vocabularies (`linattn-reader eval --file`),
// entities re-shuffled per document. `renames`, when given, receives each example's new marker of
// every old one.
std::vector<Example> cnn_examples(const std::vector<std::string>& files, const Vocabulary& words,
                                  const Vocabulary& answers, uint64_t seed,
                                  std::vector<std::map<std::string, std::string>>* renames = nullptr);

}  // namespace linattn::reader
