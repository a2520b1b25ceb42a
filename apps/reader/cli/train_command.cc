// linattn-reader train: one mechanism on one data set, checkpointed and resumable.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../../common/run_app.h"
#include "commands.h"
#include "linattn/core/error.h"
#include "linattn/core/threads.h"
#include "training.h"

namespace linattn::reader::cli {
namespace {

struct TrainArgs {
  DataSpec data;
  std::string data_dir, mechanism = "linear", checkpoint, results;
  int64_t hidden = 64, embedding = 64, layers = 1, attention = 100, output = 100, slots = 16;
  bool bidirectional = false, resume = false, no_progress = false, slot_positions = false;
  double dropout = 0.0, linear_scale = 10.0;
  TrainSettings settings;
  int64_t max_steps = -1;
  int threads = 1;  // measured fastest for these small ops (2 threads: 3x slower, oversubscribed)
};

// Options that describe the run, and where the checkpoint keeps them. A resumed run takes its
// settings from the checkpoint; an option given again must agree with it.
struct Fixed {
  const char* option;
  const char* section;
  const char* key;
};
constexpr Fixed kFixedOnResume[] = {
    {"--task", "data", "task"},           {"--ten-k", "data", "ten_k"},
    {"--valid-fraction", "data", "valid_fraction"}, {"--mqar-pairs", "data", "pairs"},
    {"--mqar-vocab", "data", "vocab"},    {"--mqar-train", "data", "train_sequences"},
    {"--mechanism", "model", "mechanism"}, {"--hidden", "model", "hidden"},
    {"--embedding", "model", "embedding"}, {"--layers", "model", "layers"},
    {"--bidirectional", "model", "bidirectional"}, {"--attention-size", "model", "attention"},
    {"--output-size", "model", "output"}, {"--dropout", "model", "dropout"},
    {"--linear-scale", "model", "linear_scale"}, {"--batch", "settings", "batch"},
    {"--lr", "settings", "lr"},           {"--clip", "settings", "clip"},
    {"--seed", "settings", "seed"},       {"--checkpoint-every", "settings", "checkpoint_every"},
    {"--patience", "settings", "patience"}, {"--cnn", "data", "dir"},
    {"--max-examples", "data", "max_examples"}, {"--slots", "model", "slots"},
    {"--slot-positions", "model", "slot_positions"}};

void append_result(const std::string& path, const nlohmann::json& line) {
  std::ofstream out(path, std::ios::app);
  if (!out || !(out << line.dump() << "\n") || !out.flush()) throw Error("cannot append to results file '" + path + "'");
}

void run(const TrainArgs& a, const CLI::App& cmd) {
  set_threads(a.threads);
  Checkpoint c;
  Dataset data;
  const bool resuming = a.resume && !a.checkpoint.empty() && std::filesystem::exists(a.checkpoint);
  if (a.resume && a.checkpoint.empty()) throw Error("--resume needs --checkpoint FILE");
  if (resuming) {
    c = Checkpoint::load(a.checkpoint);
    const nlohmann::json stored = c.describe();
    const nlohmann::json requested = {
        {"data", to_json(a.data)},
        {"model", to_json(ReaderOptions(2, 3).mechanism(parse_mechanism(a.mechanism)).hidden(a.hidden).embedding(a.embedding)
                              .layers(a.layers).bidirectional(a.bidirectional).attention(a.attention).output(a.output)
                              .dropout(a.dropout).linear_scale(a.linear_scale).slots(a.slots)
                              .slot_positions(a.slot_positions))},
        {"settings", {{"batch", a.settings.batch}, {"lr", a.settings.lr}, {"clip", a.settings.clip},
                      {"seed", a.settings.seed}, {"checkpoint_every", a.settings.checkpoint_every},
                      {"patience", a.settings.patience}}}};
    for (const Fixed& f : kFixedOnResume) {
      if (cmd.count(f.option) == 0) continue;
      const auto& want = requested.at(f.section);
      const auto& have = stored.at(f.section);
      if (!want.contains(f.key) || !have.contains(f.key) || want.at(f.key) != have.at(f.key))
        throw Error(std::string(f.option) + " " + (want.contains(f.key) ? want.at(f.key).dump() : "?") + " disagrees with " +
                    a.checkpoint + " (" + (have.contains(f.key) ? have.at(f.key).dump() : "not set") +
                    "): a resumed run keeps its settings; drop the option or start a new checkpoint");
    }
    if (cmd.count("--epochs") > 0) c.settings.epochs = a.settings.epochs;  // extending a run is allowed
    data = load_dataset(c.data, a.data_dir, &c.words, &c.answers);
    std::printf("resuming %s at epoch %d, step %lld\n", a.checkpoint.c_str(), c.progress.epochs_done + 1,
                static_cast<long long>(c.progress.step_in_epoch));
  } else {
    if (a.resume) std::printf("no checkpoint at %s yet: starting afresh\n", a.checkpoint.c_str());
    data = load_dataset(a.data, a.data_dir);
    const ReaderOptions options = ReaderOptions(data.words.size(), data.answers.size())
                                      .mechanism(parse_mechanism(a.mechanism))
                                      .hidden(a.hidden)
                                      .embedding(a.embedding)
                                      .layers(a.layers)
                                      .bidirectional(a.bidirectional)
                                      .attention(a.attention)
                                      .output(a.output)
                                      .dropout(a.dropout)
                                      .linear_scale(a.linear_scale)
                                      .slots(a.slots)
                                      .slot_positions(a.slot_positions);
    c = Checkpoint::start(options, a.data, a.settings, data.words, data.answers);
  }
  std::printf("%s: %zu train / %zu valid / %zu test questions; %s attention, %lld units%s; %s%d epochs, lr %g%s\n",
              c.data.describe().c_str(), data.train.size(), data.valid.size(), data.test.size(),
              to_string(c.model_options.mechanism()).c_str(), static_cast<long long>(c.model_options.hidden()),
              c.model_options.bidirectional() ? " per direction" : "", c.settings.patience > 0 ? "up to " : "",
              c.settings.epochs, c.settings.lr,
              c.settings.patience > 0 ? (", patience " + std::to_string(c.settings.patience)).c_str() : "");
  if (a.checkpoint.empty()) std::printf("(no --checkpoint: the trained model will not be saved)\n");
  std::fflush(stdout);
  RunOptions run{a.checkpoint, a.max_steps, !a.no_progress, stdout};
  if (!train(c, data, run)) {
    std::printf("stopped after %lld steps (--max-steps); continue with --resume --checkpoint %s\n",
                static_cast<long long>(a.max_steps), a.checkpoint.c_str());
    return;
  }
  const double test = accuracy(c.best, data.test, c.answers.size());
  std::printf("test accuracy %.3f (at the best validation epoch, %d: valid %.3f)\n", test, c.progress.best_epoch,
              c.progress.best_valid);
  if (!a.results.empty()) {
    nlohmann::json line = to_json(c.data);
    line.update(to_json(c.model_options));
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& r : c.progress.curve) curve.push_back(to_json(r));
    line.update({{"data", c.data.name()},
                 {"seed", c.settings.seed},
                 {"epochs", c.settings.epochs},
                 {"epochs_run", c.progress.epochs_done},
                 {"stopped_early", c.progress.stopped_early},
                 {"patience", c.settings.patience},
                 {"lr", c.settings.lr},
                 {"best_epoch", c.progress.best_epoch},
                 {"valid_accuracy", c.progress.best_valid},
                 {"test_accuracy", test},
                 {"seconds", c.progress.seconds},
                 {"checkpoint", a.checkpoint},
                 {"curve", curve}});
    line["seed"] = c.settings.seed;  // the training seed (the data's is data_seed)
    line["data_seed"] = c.data.seed;
    append_result(a.results, line);
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train one mechanism on a bAbI task (or CNN, or MQAR); report test accuracy");
  cmd->footer(
      "Examples:\n"
      "  linattn-reader train --task 1 --mechanism gated-vector --checkpoint t1.ckpt --results runs.jsonl\n"
      "  linattn-reader train --resume --checkpoint t1.ckpt          (continues as if never stopped)\n"
      "  linattn-reader train --mqar-pairs 16 --mechanism linear --hidden 64\n"
      "  linattn-reader train --cnn ~/cnn --mechanism linear --patience 2 --checkpoint cnn.ckpt  (the DeepMind layout)");
  cmd->add_option("--task", a->data.task, "bAbI task number")->check(CLI::Range(1, 20));
  cmd->add_flag("--ten-k", a->data.ten_k, "use en-10k (10,000 training questions)");
  cmd->add_option("--data", a->data_dir, "bAbI directory (default: $LINATTN_BABI_DIR or ../shared/data/babi)");
  cmd->add_option("--valid-fraction", a->data.valid_fraction, "training stories held out for validation")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--mqar-pairs", a->data.mqar.pairs, "train on MQAR with this many key-value pairs instead of bAbI")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--mqar-vocab", a->data.mqar.vocab, "MQAR vocabulary (keys below half, values above)")->check(CLI::Range(8, 1000000));
  cmd->add_option("--mqar-train", a->data.mqar.train_sequences, "MQAR training sequences")->check(CLI::Range(1, 10000000));
  auto* cnn = cmd->add_option("--cnn", a->data.cnn.dir,
                              "train on CNN / Daily Mail cloze QA: a directory holding questions/{training,validation,test}/*.question")
                  ->check(CLI::ExistingDirectory);
  cmd->add_option("--max-examples", a->data.cnn.max_examples, "CNN: read at most N questions per split (the first by name)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->needs(cnn);
  cmd->add_option("--mechanism", a->mechanism,
                  "none, softmax, linear, gated-scalar, gated-vector, or the relatives galerkin, lambda and kslot");
  cmd->add_option("--hidden", a->hidden, "GRU units (per direction; default 64, CNN 100 as the authors)")->check(CLI::Range(1, 4096));
  cmd->add_option("--embedding", a->embedding, "word embedding size (default 64, CNN 100)")->check(CLI::Range(1, 4096));
  cmd->add_option("--layers", a->layers, "stacked GRU layers")->check(CLI::Range(1, 16));
  cmd->add_flag("--bidirectional", a->bidirectional, "bidirectional GRU encoders (states 2 x hidden wide)");
  cmd->add_option("--attention-size", a->attention, "softmax's additive scorer width")->check(CLI::Range(1, 4096));
  cmd->add_option("--output-size", a->output, "the output layer's width")->check(CLI::Range(1, 4096));
  cmd->add_option("--dropout", a->dropout, "dropout on embeddings and read-out")->check(CLI::Range(0.0, 0.95));
  cmd->add_option("--linear-scale", a->linear_scale, "r = scale C q / n for (gated) linear attention (authors: 1000)")
      ->check(linattn::apps::positive());
  cmd->add_option("--slots", a->slots, "kslot: the memory's K slots (Britz et al. 2017)")->check(CLI::Range(1, 4096));
  cmd->add_flag("--slot-positions", a->slot_positions, "kslot: weight the slots by the authors' position encoding");
  cmd->add_option("--epochs", a->settings.epochs, "training epochs, the most with --patience (when resuming: extends the run)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--patience", a->settings.patience,
                  "stop after this many epochs without a better validation accuracy (0: train every epoch)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--batch", a->settings.batch, "batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--lr", a->settings.lr, "Adam learning rate (default: 3e-4 for softmax, as the authors; 1e-3 otherwise)")
      ->check(linattn::apps::positive());
  cmd->add_option("--clip", a->settings.clip, "gradient norm clipping")->check(linattn::apps::positive());
  cmd->add_option("--seed", a->settings.seed, "seed of initialisation, batch order, dropout and the validation split");
  cmd->add_option("--checkpoint", a->checkpoint, "save the run here (atomically) after every epoch");
  cmd->add_option("--checkpoint-every", a->settings.checkpoint_every, "also checkpoint every N steps")->check(CLI::Range(0, 1 << 30));
  cmd->add_flag("--resume", a->resume, "continue the run in --checkpoint (start it when the file does not exist yet)");
  cmd->add_option("--max-steps", a->max_steps, "stop (checkpointed) after N steps of this invocation")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--results", a->results, "append a JSON line of results (with the learning curve) to this file");
  cmd->add_option("--threads", a->threads, "threads for LibTorch and linattn")->check(CLI::Range(1, 1024));
  cmd->add_flag("--no-progress", a->no_progress, "no live progress line (one line per epoch only)");
  cmd->callback([a, cmd] {
    TrainArgs args = *a;
    if (cmd->count("--mqar-pairs") > 0 && cmd->count("--cnn") > 0) throw CLI::ValidationError("--cnn", "--cnn and --mqar-pairs exclude each other");
    if (cmd->count("--mqar-pairs") > 0) args.data.kind = "mqar";
    if (cmd->count("--cnn") > 0) {
      if (cmd->count("--task") > 0 || cmd->count("--ten-k") > 0) throw CLI::ValidationError("--cnn", "--cnn reads CNN, not a bAbI --task");
      args.data.kind = "cnn";
      args.data.cnn.dir = std::filesystem::absolute(args.data.cnn.dir).lexically_normal().string();
      if (cmd->count("--hidden") == 0) args.hidden = 100;  // the authors' sizes for this data
      if (cmd->count("--embedding") == 0) args.embedding = 100;
    }
    if (cmd->count("--lr") == 0) args.settings.lr = default_learning_rate(parse_mechanism(args.mechanism));
    args.data.seed = args.settings.seed;
    run(args, *cmd);
  });
}

void set_threads(int threads) {
  torch::set_num_threads(threads);
  linattn::set_num_threads(threads);
}

}  // namespace linattn::reader::cli
