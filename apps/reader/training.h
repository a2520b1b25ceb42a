// Training and evaluating the reader: the loop behind `linattn-reader train` (Adam, gradient
// clipping, length-sorted batches, validation after every epoch, atomic checkpoints, resuming
// exactly where a run stopped) and accuracy/prediction on any split.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "dataset.h"

namespace linattn::reader {

struct RunOptions {
  std::string checkpoint_path;  // saved after every epoch (and every settings.checkpoint_every steps)
  int64_t max_steps = -1;       // stop after this many steps of this call (checkpointing first); -1: no limit
  bool progress_bar = false;    // a live line (step, loss, accuracy, examples/s, ETA); else a line per epoch
  std::FILE* log = stdout;
};

// Trains c.model from where c.progress stands up to c.settings.epochs. Keeps c.best at the
// weights of the best validation epoch. Returns true when every epoch is done, false when
// max_steps stopped it first. Deterministic for a given checkpoint and thread count.
bool train(Checkpoint& c, const Dataset& data, const RunOptions& run);

// Predicted answer ids and logits [N, answers] of `model` on examples (evaluation mode).
struct Predictions {
  std::vector<int64_t> answers;
  torch::Tensor logits;
};
Predictions predict(Reader& model, const std::vector<Example>& examples, int64_t answer_count, int64_t batch = 64);

double accuracy(Reader& model, const std::vector<Example>& examples, int64_t answer_count, int64_t batch = 64);

}  // namespace linattn::reader
