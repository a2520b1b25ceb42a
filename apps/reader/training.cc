#include "training.h"

#include <unistd.h>

#include <chrono>

#include "batches.h"

namespace linattn::reader {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void copy_parameters(const Reader& from, Reader& to) {
  torch::NoGradGuard no_grad;
  const auto src = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(src[p.key()]);
}

// The batch order of an epoch depends on the seed and the epoch only, so a resumed run replays it.
uint64_t epoch_seed(uint64_t seed, int epoch) { return seed * 1000003u + static_cast<uint64_t>(epoch); }

}  // namespace

Predictions predict(Reader& model, const std::vector<Example>& examples, int64_t answer_count, int64_t batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  Predictions p;
  std::vector<torch::Tensor> logits;
  for (const auto& idx : sequential_batches(static_cast<int64_t>(examples.size()), batch)) {
    const ReaderBatch b = make_batch(examples, idx, answer_count);
    logits.push_back(model->forward(b));
    const torch::Tensor best = logits.back().argmax(1);
    for (int64_t i = 0; i < best.size(0); ++i) p.answers.push_back(best[i].item<int64_t>());
  }
  p.logits = logits.empty() ? torch::zeros({0, answer_count}) : torch::cat(logits);
  if (was_training) model->train();
  return p;
}

double accuracy(Reader& model, const std::vector<Example>& examples, int64_t answer_count, int64_t batch) {
  if (examples.empty()) return 0.0;
  const Predictions p = predict(model, examples, answer_count, batch);
  int64_t correct = 0;
  for (size_t i = 0; i < examples.size(); ++i) correct += p.answers[i] == examples[i].answer;
  return static_cast<double>(correct) / static_cast<double>(examples.size());
}

bool train(Checkpoint& c, const Dataset& data, const RunOptions& run) {
  Progress& pr = c.progress;
  const TrainSettings& s = c.settings;
  const int64_t answer_count = c.answers.size();
  const bool tty = run.progress_bar && isatty(fileno(run.log));
  auto segment_start = Clock::now();
  const double seconds_before = pr.seconds;
  auto save = [&] {
    pr.seconds = seconds_before + seconds_since(segment_start);
    if (!run.checkpoint_path.empty()) c.save(run.checkpoint_path);
  };
  int64_t steps = 0;
  auto last_draw = Clock::now();
  c.model->train();
  for (int epoch = pr.epochs_done + 1; epoch <= s.epochs && !pr.stopped_early; ++epoch) {
    const auto batches = length_sorted_batches(data.train, s.batch, epoch_seed(s.seed, epoch));
    const int64_t n_batches = static_cast<int64_t>(batches.size());
    for (int64_t step = pr.step_in_epoch; step < n_batches; ++step) {
      if (run.max_steps >= 0 && steps >= run.max_steps) {
        save();
        if (tty) std::fputc('\n', run.log);
        return false;
      }
      const auto& idx = batches[static_cast<size_t>(step)];
      const ReaderBatch b = make_batch(data.train, idx, answer_count);
      c.adam->zero_grad();
      const torch::Tensor logits = c.model->forward(b);
      const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, b.answers);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(c.model->parameters(), s.clip);
      c.adam->step();
      pr.loss_sum += loss.item<double>() * static_cast<double>(idx.size());
      pr.correct += (logits.argmax(1) == b.answers).sum().item<int64_t>();
      pr.seen += static_cast<int64_t>(idx.size());
      pr.step_in_epoch = step + 1;
      ++steps;
      if (tty && std::chrono::duration<double>(Clock::now() - last_draw).count() > 0.25) {
        last_draw = Clock::now();
        const double elapsed = seconds_before + seconds_since(segment_start);
        const double done = (epoch - 1) + static_cast<double>(step + 1) / static_cast<double>(n_batches);
        const double per_epoch_examples = static_cast<double>(data.train.size());
        std::fprintf(run.log, "\r  epoch %d/%d  step %lld/%lld  loss %.4f  acc %.3f  %.0f examples/s  ETA %.0f s   ", epoch,
                     s.epochs, static_cast<long long>(step + 1), static_cast<long long>(n_batches),
                     pr.loss_sum / static_cast<double>(pr.seen),
                     static_cast<double>(pr.correct) / static_cast<double>(pr.seen), done * per_epoch_examples / elapsed,
                     elapsed / done * (s.epochs - done));
        std::fflush(run.log);
      }
      if (s.checkpoint_every > 0 && pr.step_in_epoch % s.checkpoint_every == 0 && pr.step_in_epoch < n_batches) save();
    }
    const double valid = accuracy(c.model, data.valid, answer_count);
    const double elapsed = seconds_before + seconds_since(segment_start);
    pr.curve.push_back({epoch, pr.loss_sum / static_cast<double>(std::max<int64_t>(1, pr.seen)),
                        static_cast<double>(pr.correct) / static_cast<double>(std::max<int64_t>(1, pr.seen)), valid,
                        elapsed});
    if (valid > pr.best_valid) {  // the model to keep is chosen on validation, never on test
      pr.best_valid = valid;
      pr.best_epoch = epoch;
      copy_parameters(c.model, c.best);
    }
    const EpochRecord& r = pr.curve.back();
    std::fprintf(run.log, "%sepoch %3d/%d  loss %.4f  train acc %.3f  valid acc %.3f  %.0f examples/s  ETA %.0f s\n",
                 tty ? "\r" : "", epoch, s.epochs, r.loss, r.train_accuracy, r.valid_accuracy,
                 static_cast<double>(data.train.size()) * epoch / elapsed, elapsed / epoch * (s.epochs - epoch));
    std::fflush(run.log);
    pr.epochs_done = epoch;
    pr.step_in_epoch = 0;
    pr.loss_sum = 0;
    pr.seen = pr.correct = 0;
    if (s.patience > 0 && epoch - pr.best_epoch >= s.patience) {
      pr.stopped_early = true;
      std::fprintf(run.log, "stopping early after epoch %d: no better validation accuracy for %d epochs (best %.3f at epoch %d)\n",
                   epoch, s.patience, pr.best_valid, pr.best_epoch);
      std::fflush(run.log);
    }
    save();
  }
  return true;
}

}  // namespace linattn::reader
