// A trained (or training) reader in one file: what it is (model options, data, training
// settings, vocabularies), where training stands (epoch, step, learning curve), the current
// weights and Adam's state (to resume), the weights of the best validation epoch (to use), and
// the random generator's state (so that a resumed run continues as if never stopped).
// Written atomically (linattn::write_file_atomic): a crash leaves the previous checkpoint.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "dataset.h"
#include "model.h"

namespace linattn::reader {

// Where the examples come from.
struct DataSpec {
  std::string kind = "babi";  // "babi", "mqar" or "cnn"
  int task = 1;               // bAbI task 1-20
  bool ten_k = false;         // en-10k
  double valid_fraction = 0.1;
  MqarReaderOptions mqar;
  CnnReaderOptions cnn;       // the directory as given to train (eval/encode may point elsewhere)
  uint64_t seed = 1;          // the validation split (bAbI), the draws (MQAR), the entity shuffles (CNN)
  std::string describe() const;  // "bAbI task 1 (en)", "MQAR, 8 pairs", "CNN (dir)"
  std::string name() const;      // "en", "en-10k", "mqar" or "cnn": the results' "data"
};

struct TrainSettings {
  int epochs = 20;               // the most epochs to train
  int64_t batch = 32;
  double lr = 1e-3, clip = 10.0;
  uint64_t seed = 1;            // initialisation, batch order, dropout
  int64_t checkpoint_every = 0;  // steps between mid-epoch checkpoints (0: at each epoch's end only)
  int patience = 0;              // stop after this many epochs without a better validation
                                 // accuracy (0: train every epoch)
};

// The Adam learning rate a mechanism trains at unless told otherwise: the authors' 3e-4 for
// softmax attention, 1e-3 for every other mechanism.
double default_learning_rate(Mechanism m);

struct EpochRecord {
  int epoch = 0;
  double loss = 0, train_accuracy = 0, valid_accuracy = 0, seconds = 0;
};

struct Progress {
  int epochs_done = 0;
  int64_t step_in_epoch = 0;  // batches of the current epoch already trained on
  double loss_sum = 0;        // the current epoch's running sums
  int64_t seen = 0, correct = 0;
  double best_valid = -1;
  int best_epoch = 0;
  double seconds = 0;         // training time so far
  bool stopped_early = false;  // settings.patience epochs passed without a better validation
  std::vector<EpochRecord> curve;
};

// Loads the examples `spec` names, mapped through the given vocabularies when non-empty (a
// trained model's), else through vocabularies built from the training split. data_dir: the
// bAbI directory (find_babi_root rules) or the CNN one.
// CNN: data_dir, when not empty, replaces the directory in `spec` (a moved data set), and the
// training split is read only when `need_training` or there are no vocabularies.
Dataset load_dataset(const DataSpec& spec, const std::string& data_dir, const Vocabulary* words = nullptr,
                     const Vocabulary* answers = nullptr, bool need_training = true);

struct Checkpoint {
  ReaderOptions model_options{2, 3};
  DataSpec data;
  TrainSettings settings;
  Vocabulary words, answers;
  Progress progress;
  Reader model{nullptr}, best{nullptr};
  std::unique_ptr<torch::optim::Adam> adam;

  // A fresh run: models initialised from settings.seed.
  static Checkpoint start(const ReaderOptions& options, const DataSpec& data, const TrainSettings& settings,
                          const Vocabulary& words, const Vocabulary& answers);
  // Throws FormatError naming `path` for anything that is not a complete checkpoint.
  static Checkpoint load(const std::string& path);
  // Atomic; includes the default CPU generator's state.
  void save(const std::string& path) const;
  nlohmann::json describe() const;  // everything but the tensors
};

nlohmann::json to_json(const ReaderOptions& o);
nlohmann::json to_json(const DataSpec& d);
nlohmann::json to_json(const EpochRecord& r);

}  // namespace linattn::reader
