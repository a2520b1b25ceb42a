#include "serve.h"

#include <chrono>
#include <filesystem>
#include <map>

#include "batches.h"
#include "linattn/core/error.h"
#include "linattn/memory/bank.h"
#include "linattn/memory/memory_file.h"
#include "training.h"

namespace linattn::reader {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The first example of every distinct story, in order.
std::vector<int64_t> distinct_stories(const std::vector<Example>& examples) {
  std::map<std::string, int64_t> seen;
  std::vector<int64_t> out;
  for (size_t i = 0; i < examples.size(); ++i)
    if (seen.emplace(story_key(examples[i]), static_cast<int64_t>(i)).second) out.push_back(static_cast<int64_t>(i));
  return out;
}

MemoryConfig memory_config(const Reader& model, DType dtype) {
  // C = sum h~ h~^T (linear, gated, Galerkin) is symmetric: stored packed, d(d+1)/2 numbers.
  return {.key_dim = model->memory_key_width(),
          .value_dim = model->state_size(),
          .feature_map = FeatureMap::identity,
          .normalize = false,
          .gated = false,
          .symmetric = model->memory_readout().symmetric,
          .dtype = dtype,
          .kind = model->memory_kind()};
}

ServeReport compare(const std::vector<Example>& examples, const std::vector<torch::Tensor>& logits, Reader& model,
                    int64_t answer_count) {
  const Predictions graph = predict(model, examples, answer_count);
  ServeReport r;
  r.questions = static_cast<int64_t>(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const int64_t answer = logits[i].argmax().item<int64_t>();
    r.correct += answer == examples[i].answer;
    r.agree += answer == graph.answers[i];
    const torch::Tensor diff = (logits[i] - graph.logits[static_cast<int64_t>(i)]).abs();
    // -inf - -inf is NaN: the masked candidates are equal by construction.
    r.max_logit_difference = std::max(r.max_logit_difference, torch::nan_to_num(diff, 0.0).max().item<double>());
  }
  return r;
}

}  // namespace

LookupOptions lookup_options(const Reader& model) {
  const MemoryReadout m = model->memory_readout();
  return {.mean = m.mean, .scale = static_cast<float>(m.scale)};
}

std::string story_key(const Example& e) { return std::to_string(e.story_id) + ":" + std::to_string(e.story.size()); }

EncodeReport encode_stories(Checkpoint& c, const std::vector<Example>& examples, const std::string& bank_path,
                            DType dtype) {
  if (!c.best->has_fixed_size_memory())
    throw Error("only linear, gated linear, galerkin, lambda and kslot readers store fixed-size memories; this one uses " +
                to_string(c.model_options.mechanism()) + " attention");
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  c.best->eval();
  const MemoryConfig config = memory_config(c.best, dtype);
  const std::vector<int64_t> stories = distinct_stories(examples);
  std::vector<std::pair<std::string, std::vector<std::byte>>> entries;
  EncodeReport report;
  for (size_t i = 0; i < stories.size(); i += 64) {
    const std::vector<int64_t> idx(stories.begin() + static_cast<long>(i),
                                   stories.begin() + static_cast<long>(std::min(stories.size(), i + 64)));
    const ReaderBatch b = make_batch(examples, idx, c.answers.size());
    const torch::Tensor h = c.best->encode_story(b.story, b.story_lengths);
    const torch::Tensor C = c.best->encode_memory(h, b.story_lengths).contiguous();
    const torch::Tensor Z = c.best->memory_normalizer(h, b.story_lengths);
    for (size_t j = 0; j < idx.size(); ++j) {
      const torch::Tensor state = C[static_cast<int64_t>(j)];
      const Example& e = examples[static_cast<size_t>(idx[j])];
      std::vector<float> z;
      if (Z.defined()) {
        const torch::Tensor row = Z[static_cast<int64_t>(j)].contiguous();
        z.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
      }
      Memory m = Memory::from_state(config, std::vector<float>(state.data_ptr<float>(), state.data_ptr<float>() + state.numel()),
                                    std::move(z), static_cast<int64_t>(e.story.size()));
      entries.emplace_back(story_key(e), serialize(m));
      report.bytes_per_story += static_cast<double>(entries.back().second.size());
    }
  }
  Bank::create(bank_path);
  Bank bank = Bank::open(bank_path);
  bank.append_all(entries);
  report.stories = static_cast<int64_t>(entries.size());
  if (report.stories > 0) {
    report.payload_per_story = static_cast<double>(bank.memory(0).info().payload_bytes);
    report.bytes_per_story = static_cast<double>(std::filesystem::file_size(bank_path)) / static_cast<double>(report.stories);
  }
  report.seconds = seconds_since(start);
  return report;
}

ServeReport answer_from_bank(Checkpoint& c, const std::vector<Example>& examples, const std::string& bank_path) {
  if (!c.best->has_fixed_size_memory())
    throw Error("a " + to_string(c.model_options.mechanism()) + " reader has no fixed-size memories to answer from");
  const Bank bank = Bank::open(bank_path);
  if (bank.size() > 0 && bank.key_dim() != c.best->memory_key_width())
    throw Error(bank_path + " holds memories of key width " + std::to_string(bank.key_dim()) + ", this model's are " +
                std::to_string(c.best->memory_key_width()));
  torch::NoGradGuard no_grad;
  c.best->eval();
  const LookupOptions lookup = lookup_options(c.best);
  std::vector<torch::Tensor> logits;
  double lookup_seconds = 0;
  const auto start = Clock::now();
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& e = examples[i];
    const auto entry = bank.find(story_key(e));
    if (!entry) throw Error(bank_path + " has no memory for story " + story_key(e) + " (encode this split first)");
    const ReaderBatch b = make_batch(examples, {static_cast<int64_t>(i)}, c.answers.size());
    const torch::Tensor q = c.best->encode_question(b.question, b.question_lengths).contiguous();
    const torch::Tensor key = c.best->memory_query(q).contiguous();
    torch::Tensor r = torch::empty_like(q);
    const auto t = Clock::now();
    const MemoryView& m = bank.memory(*entry);
    m.lookup(CView2::contiguous(key.data_ptr<float>(), {1, key.size(1)}),
             View2::contiguous(r.data_ptr<float>(), {1, r.size(1)}), lookup);
    lookup_seconds += seconds_since(t);
    logits.push_back(c.best->output(r, q, b.candidates)[0]);
  }
  const double seconds = seconds_since(start);
  ServeReport r = compare(examples, logits, c.best, c.answers.size());
  r.mechanism = to_string(c.model_options.mechanism());
  r.store = c.best->options.mechanism() == Mechanism::kslot ? "K x d memory, bank file"
            : c.best->memory_readout().symmetric                ? "d x d memory, packed, bank file"
                                                                : "d x d memory, bank file";
  r.stories = bank.size();
  for (int64_t i = 0; i < bank.size(); ++i) r.bytes_per_story += static_cast<double>(bank.memory(i).info().payload_bytes);
  if (bank.size() > 0) r.bytes_per_story /= static_cast<double>(bank.size());
  r.lookup_us = examples.empty() ? 0 : 1e6 * lookup_seconds / static_cast<double>(examples.size());
  r.questions_per_second = seconds > 0 ? static_cast<double>(examples.size()) / seconds : 0;
  return r;
}

ServeReport answer_from_states(Reader& model, const std::vector<Example>& examples, int64_t answer_count) {
  torch::NoGradGuard no_grad;
  model->eval();
  const Mechanism mech = model->options.mechanism();
  // Each story encoded once into its stored form.
  std::map<std::string, torch::Tensor> store;
  double stored_bytes = 0;
  for (int64_t i : distinct_stories(examples)) {
    const ReaderBatch b = make_batch(examples, {i}, answer_count);
    const torch::Tensor h = model->encode_story(b.story, b.story_lengths);
    torch::Tensor kept;
    if (mech == Mechanism::softmax) kept = h.clone();                                          // [1, T, d]
    else if (mech == Mechanism::none) kept = model->attend(h, h.select(1, 0), b.story_lengths);  // [1, d]
    else kept = model->encode_memory(h, b.story_lengths);                                     // [1, d, d]
    const int64_t d = model->state_size();
    const bool packed = model->has_fixed_size_memory() && model->memory_readout().symmetric;
    stored_bytes += 4.0 * static_cast<double>(packed ? d * (d + 1) / 2 : kept.numel());  // K-slot: K x d
    store.emplace(story_key(examples[static_cast<size_t>(i)]), kept);
  }
  std::vector<torch::Tensor> logits;
  double lookup_seconds = 0;
  const auto start = Clock::now();
  for (size_t i = 0; i < examples.size(); ++i) {
    const ReaderBatch b = make_batch(examples, {static_cast<int64_t>(i)}, answer_count);
    const torch::Tensor q = model->encode_question(b.question, b.question_lengths);
    const torch::Tensor& kept = store.at(story_key(examples[i]));
    const auto t = Clock::now();
    torch::Tensor r;
    if (mech == Mechanism::softmax) r = model->attend(kept, q, b.story_lengths);
    else if (mech == Mechanism::none) r = kept;
    else r = model->lookup_memory(kept, q, b.story_lengths);
    lookup_seconds += seconds_since(t);
    logits.push_back(model->output(r, q, b.candidates)[0]);
  }
  const double seconds = seconds_since(start);
  ServeReport r = compare(examples, logits, model, answer_count);
  r.mechanism = to_string(mech);
  r.store = mech == Mechanism::softmax ? "every hidden state, in RAM"
            : mech == Mechanism::none  ? "last state, in RAM"
            : mech == Mechanism::kslot ? "K x d memory, in RAM"
                                       : "d x d memory, in RAM";
  r.stories = static_cast<int64_t>(store.size());
  r.bytes_per_story = store.empty() ? 0 : stored_bytes / static_cast<double>(store.size());
  r.lookup_us = examples.empty() ? 0 : 1e6 * lookup_seconds / static_cast<double>(examples.size());
  r.questions_per_second = seconds > 0 ? static_cast<double>(examples.size()) / seconds : 0;
  return r;
}

}  // namespace linattn::reader
