// linattn-reader: trains and evaluates the paper's reader on a bAbI task. A program of its own so
// that the `linattn` tool never needs LibTorch.
//   linattn-reader train --task 1 --mechanism linear [--epochs 20] [--data DIR] [--results out.jsonl]
#include <CLI/CLI.hpp>

#include "../common/run_app.h"
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "batches.h"
#include "linattn/core/error.h"
#include "linattn/kernels/parallel.h"
#include "model.h"

namespace {
using namespace linattn::reader;
using Clock = std::chrono::steady_clock;

struct TrainArgs {
  int task = 1;
  std::string mechanism = "linear", data, results;
  bool ten_k = false;
  int epochs = 20, batch = 32, hidden = 64, embedding = 64, threads = 1;  // 1: measured fastest (tiny ops)
  double lr = 1e-3, clip = 10.0, valid_fraction = 0.1, dropout = 0.0, linear_scale = 1.0;
  uint64_t seed = 1;
};

// Accuracy of `model` on examples, in batches.
double accuracy(Reader& model, const std::vector<BabiExample>& examples, const Vocabulary& words,
                const Vocabulary& answers, int batch) {
  if (examples.empty()) return 0.0;
  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0;
  for (size_t i = 0; i < examples.size(); i += static_cast<size_t>(batch)) {
    std::vector<int64_t> idx;
    for (size_t j = i; j < std::min(examples.size(), i + static_cast<size_t>(batch)); ++j) idx.push_back(static_cast<int64_t>(j));
    const ReaderBatch b = make_batch(examples, idx, words, answers);
    correct += (model->forward(b).argmax(1) == b.answers).sum().item<int64_t>();
  }
  model->train();
  return static_cast<double>(correct) / static_cast<double>(examples.size());
}

void train(const TrainArgs& a) {
  torch::manual_seed(a.seed);
  torch::set_num_threads(a.threads);
  linattn::set_num_threads(a.threads);
  const Mechanism mechanism = parse_mechanism(a.mechanism);
  const std::string root = find_babi_root(a.data.empty() ? std::nullopt : std::optional<std::string>(a.data));
  const BabiTask task = load_babi(root, a.task, a.ten_k, a.valid_fraction, a.seed);
  for (const auto& note : task.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  Vocabulary words, answers;
  build_vocabularies(task.train, words, answers);
  Reader model(ReaderOptions(words.size(), answers.size())
                   .mechanism(mechanism)
                   .hidden(a.hidden)
                   .embedding(a.embedding)
                   .dropout(a.dropout)
                   .linear_scale(a.linear_scale));
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(a.lr));
  std::printf("bAbI task %d (%s, %s): %zu train / %zu valid / %zu test questions; %s attention\n", a.task,
              task.name.c_str(), a.ten_k ? "en-10k" : "en", task.train.size(), task.valid.size(), task.test.size(),
              to_string(mechanism).c_str());
  const auto start = Clock::now();
  double best_valid = -1, test_at_best = 0;
  int best_epoch = 0;
  for (int epoch = 1; epoch <= a.epochs; ++epoch) {
    double loss_sum = 0;
    int64_t seen = 0, correct = 0;
    for (const auto& idx : length_sorted_batches(task.train, a.batch, a.seed + static_cast<uint64_t>(epoch))) {
      const ReaderBatch b = make_batch(task.train, idx, words, answers);
      adam.zero_grad();
      const auto logits = model->forward(b);
      const auto loss = torch::nn::functional::cross_entropy(logits, b.answers);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), a.clip);
      adam.step();
      loss_sum += loss.item<double>() * static_cast<double>(idx.size());
      correct += (logits.argmax(1) == b.answers).sum().item<int64_t>();
      seen += static_cast<int64_t>(idx.size());
    }
    const double valid = accuracy(model, task.valid, words, answers, a.batch);
    if (valid > best_valid) {  // test accuracy at the best validation epoch (no peeking at test)
      best_valid = valid;
      best_epoch = epoch;
      test_at_best = accuracy(model, task.test, words, answers, a.batch);
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("epoch %3d/%d  loss %.4f  train acc %.3f  valid acc %.3f  %.0f examples/s  ETA %.0f s\n", epoch,
                a.epochs, loss_sum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen),
                valid, static_cast<double>(seen) * epoch / elapsed, elapsed / epoch * (a.epochs - epoch));
    std::fflush(stdout);
  }
  std::printf("test accuracy %.3f (at the best validation epoch, %d: valid %.3f)\n", test_at_best, best_epoch, best_valid);
  if (!a.results.empty()) {
    std::ofstream out(a.results, std::ios::app);
    if (!out) throw linattn::Error("cannot append to " + a.results);
    out << nlohmann::json{{"task", a.task},           {"data", a.ten_k ? "en-10k" : "en"},
                          {"mechanism", a.mechanism}, {"seed", a.seed},
                          {"epochs", a.epochs},       {"best_epoch", best_epoch},
                          {"valid_accuracy", best_valid}, {"test_accuracy", test_at_best},
                          {"hidden", a.hidden},       {"linear_scale", a.linear_scale},       {"seconds", std::chrono::duration<double>(Clock::now() - start).count()}}
               .dump()
        << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"linattn-reader: the paper's question-answering reader on bAbI (CC BY 3.0, Weston et al. 2015)"};
  app.require_subcommand(1);
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train one mechanism on one bAbI task; report test accuracy");
  cmd->add_option("--task", a->task, "bAbI task number")->check(CLI::Range(1, 20));
  cmd->add_option("--mechanism", a->mechanism, "none, softmax, linear, gated-scalar or gated-vector");
  cmd->add_option("--data", a->data, "bAbI directory (default: $LINATTN_BABI_DIR or ../shared/data/babi)");
  cmd->add_flag("--ten-k", a->ten_k, "use en-10k (10,000 training questions)");
  cmd->add_option("--epochs", a->epochs, "training epochs")->check(CLI::Range(1, 10000));
  cmd->add_option("--batch", a->batch, "batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--hidden", a->hidden, "GRU units")->check(CLI::Range(1, 4096));
  cmd->add_option("--embedding", a->embedding, "embedding size")->check(CLI::Range(1, 4096));
  cmd->add_option("--lr", a->lr, "Adam learning rate (authors: 1e-3, softmax 3e-4)")->check(CLI::PositiveNumber);
  cmd->add_option("--clip", a->clip, "gradient norm clipping")->check(CLI::PositiveNumber);
  cmd->add_option("--dropout", a->dropout, "dropout on embeddings and read-out")->check(CLI::Range(0.0, 0.95));
  cmd->add_option("--valid-fraction", a->valid_fraction, "training stories held out")->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--seed", a->seed, "random seed");
  cmd->add_option("--linear-scale", a->linear_scale, "r = scale C q / n for (gated) linear attention (authors: 1000)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a->threads, "threads")->check(CLI::Range(1, 1024));
  cmd->add_option("--results", a->results, "append a JSON line of results to this file");
  cmd->callback([a] { train(*a); });
  return linattn::apps::run_app(app, argc, argv, "linattn-reader");
}
