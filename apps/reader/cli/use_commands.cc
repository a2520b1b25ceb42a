// linattn-reader eval / encode / answer: using a trained model, in the graph or from stored
// fixed-size memories.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>

#include "batches.h"
#include "cnn_sample.h"
#include "commands.h"
#include "linattn/core/error.h"
#include "linattn/memory/bank.h"
#include "serve.h"
#include "text_file.h"
#include "training.h"

namespace linattn::reader::cli {
namespace {

const std::vector<Example>& split_of(const Dataset& d, const std::string& split) {
  if (split == "test") return d.test;
  if (split == "valid") return d.valid;
  if (split == "train") return d.train;
  throw Error("unknown split '" + split + "' (test, valid or train)");
}

void print_serve(const ServeReport& r, bool cost_only = false) {
  std::printf("  %-15s %-30s %8.0f bytes/story  lookup %7.2f us  %6.0f questions/s", r.mechanism.c_str(), r.store.c_str(),
              r.bytes_per_story, r.lookup_us, r.questions_per_second);
  if (!cost_only)
    std::printf("  accuracy %.3f  equal to in-graph %lld/%lld (max logit difference %.2g)",
                r.questions ? static_cast<double>(r.correct) / static_cast<double>(r.questions) : 0.0,
                static_cast<long long>(r.agree), static_cast<long long>(r.questions), r.max_logit_difference);
  std::printf("\n");
}

nlohmann::json serve_json(const ServeReport& r, const Checkpoint& c) {
  nlohmann::json j = {{"kind", "serve"},
          {"data", c.data.name()},
          {"mechanism", r.mechanism},
          {"store", r.store},
          {"stories", r.stories},
          {"questions", r.questions},
          {"accuracy", r.questions ? static_cast<double>(r.correct) / static_cast<double>(r.questions) : 0.0},
          {"agree", r.agree},
          {"max_logit_difference", r.max_logit_difference},
          {"bytes_per_story", r.bytes_per_story},
          {"lookup_us", r.lookup_us},
          {"questions_per_second", r.questions_per_second}};
  if (c.data.kind == "babi") j["task"] = c.data.task;  // CNN and MQAR have no task
  return j;
}

struct UseArgs {
  std::string model, data_dir, split = "test", bank, results, story, question, entry, file;
  bool bf16 = false;
  int threads = 1, top = 1;
};

// `--file` of a CNN model: one .question file, or a directory of them (sorted by name).
std::vector<std::string> question_files(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return {path};
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path))
    if (entry.path().extension() == ".question") files.push_back(entry.path().string());
  if (files.empty()) throw Error(path + " holds no .question files");
  std::sort(files.begin(), files.end());
  return files;
}

void eval(const UseArgs& a) {
  set_threads(a.threads);
  Checkpoint c = Checkpoint::load(a.model);
  Dataset data;
  std::string what = a.split;
  if (!a.file.empty() && c.data.kind == "cnn") {  // .question files, through the model's vocabularies
    data.words = c.words;
    data.answers = c.answers;
    data.test = cnn_examples(question_files(a.file), c.words, c.answers, c.data.seed);
    what = a.file;
  } else if (!a.file.empty()) {  // any file in the bAbI format, read through the model's vocabularies
    BabiTask task;
    task.test = parse_babi(read_text_file(a.file), a.file);
    data = babi_dataset(task, c.words, c.answers);
    what = a.file;
  } else {
    data = load_dataset(c.data, a.data_dir, &c.words, &c.answers, a.split == "train");
  }
  const auto& examples = a.file.empty() ? split_of(data, a.split) : data.test;
  if (examples.empty()) throw Error("no questions in " + what + " to evaluate on");
  std::printf("%s, %s attention (best validation epoch %d of %d): accuracy %.3f on %zu questions of %s\n",
              c.data.describe().c_str(), to_string(c.model_options.mechanism()).c_str(), c.progress.best_epoch,
              c.progress.epochs_done, accuracy(c.best, examples, c.answers.size()), examples.size(), what.c_str());
  if (a.bank.empty()) return;
  std::printf("answering one question at a time from stored representations:\n");
  const ServeReport stored = answer_from_bank(c, examples, a.bank);
  print_serve(stored);
  // Softmax's cost on the same stories at the same width: its read-out must keep and scan every
  // hidden state. Cost only: an untrained softmax reader of this model's size.
  torch::manual_seed(0);
  Reader softmax(ReaderOptions(c.model_options).mechanism(Mechanism::softmax));
  ServeReport reference = answer_from_states(softmax, examples, c.answers.size());
  reference.mechanism = "softmax (cost)";
  print_serve(reference, /*cost_only=*/true);
  std::printf("  -> %.1fx fewer bytes per story, %.1fx faster lookups than softmax over the stored states\n",
              reference.bytes_per_story / stored.bytes_per_story, reference.lookup_us / stored.lookup_us);
  if (stored.agree != stored.questions)
    throw Error("answers from the stored memories differ from the in-graph pass on " +
                std::to_string(stored.questions - stored.agree) + " questions");
  if (!a.results.empty()) {
    std::ofstream out(a.results, std::ios::app);
    out << serve_json(stored, c).dump() << "\n";
    if (!out.flush()) throw Error("cannot append to " + a.results);
  }
}

void encode(const UseArgs& a) {
  set_threads(a.threads);
  Checkpoint c = Checkpoint::load(a.model);
  const Dataset data = load_dataset(c.data, a.data_dir, &c.words, &c.answers, a.split == "train");
  const EncodeReport r = encode_stories(c, split_of(data, a.split), a.bank, a.bf16 ? DType::bf16 : DType::f32);
  std::printf("stored %lld %s stories of %s in %s: %.0f bytes each in the bank (%.0f of numbers), %.2f s\n",
              static_cast<long long>(r.stories), a.split.c_str(), c.data.describe().c_str(), a.bank.c_str(),
              r.bytes_per_story, r.payload_per_story, r.seconds);
}

// A story file: one statement per line; bAbI's leading line numbers and question lines (with a
// TAB) are accepted and skipped, so a bAbI story can be pasted as it is.
std::vector<std::string> read_story(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find('\t') != std::string::npos) continue;
    size_t i = 0;
    while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) ++i;
    for (auto& t : tokenize(line.substr(i))) tokens.push_back(std::move(t));
  }
  return tokens;
}

// A CNN question file read for `answer`: the example through the model's vocabularies, and how
// to print an answer in the file's own terms ("@entity12 (Name)").
struct CnnQuestion {
  Example example;
  std::map<std::string, std::string> label;  // the model's marker -> the file's marker and name
};

CnnQuestion read_cnn_question(const Checkpoint& c, const std::string& path, const std::string& question, int64_t* unknown) {
  const CnnExample original = load_cnn_question(path);
  std::vector<std::map<std::string, std::string>> renames;
  CnnQuestion q{cnn_examples({path}, c.words, c.answers, c.data.seed, &renames).front(), {}};
  for (const auto& [old_marker, new_marker] : renames.front()) {
    const auto name = original.entity_names.find(old_marker);
    q.label[new_marker] = old_marker + (name == original.entity_names.end() ? "" : " (" + name->second + ")");
  }
  if (!question.empty()) {  // the user's own query, in the file's markers
    std::istringstream in(question);
    std::vector<std::string> tokens;
    for (std::string t; in >> t;) tokens.push_back(renames.front().count(t) ? renames.front().at(t) : t);
    q.example.question = to_ids(c.words, tokens);
  }
  for (int64_t id : q.example.story) *unknown += id == Vocabulary::kUnknown;
  for (int64_t id : q.example.question) *unknown += id == Vocabulary::kUnknown;
  return q;
}

void answer(const UseArgs& a) {
  set_threads(a.threads);
  Checkpoint c = Checkpoint::load(a.model);
  if (a.story.empty() == a.entry.empty()) throw Error("give the story as --story FILE, or a stored one as --bank B --entry NAME");
  if (!a.entry.empty() && a.bank.empty()) throw Error("--entry needs --bank");
  const bool cnn = c.data.kind == "cnn" && !a.story.empty();
  if (a.question.empty() && !cnn) throw Error("--question is required (only a CNN .question file brings its own)");
  int64_t unknown = 0;
  Example e;
  std::map<std::string, std::string> label;
  if (cnn) {
    CnnQuestion q = read_cnn_question(c, a.story, a.question, &unknown);
    e = std::move(q.example);
    label = std::move(q.label);
  } else {
    e.question = to_ids(c.words, tokenize(a.question), &unknown);
  }
  if (e.question.empty()) throw Error("the question is empty");
  if (!a.story.empty() && !cnn) {
    e.story = to_ids(c.words, read_story(a.story), &unknown);
    if (e.story.empty()) throw Error("the story in " + a.story + " is empty: there is nothing to answer from");
  }
  if (unknown > 0)
    std::fprintf(stderr, "note: %lld word(s) never seen in training are read as <unk>\n", static_cast<long long>(unknown));
  torch::NoGradGuard no_grad;
  c.best->eval();
  const ReaderBatch b = make_batch({e}, {0}, c.answers.size());
  torch::Tensor logits;
  if (a.story.empty()) {
    const Bank bank = Bank::open(a.bank);
    const auto i = bank.find(a.entry);
    if (!i) throw Error(a.bank + " has no memory named '" + a.entry + "' (see `linattn bank list`)");
    if (!c.best->has_fixed_size_memory())
      throw Error("only a linear, gated linear, galerkin, lambda or kslot model answers from stored memories");
    const torch::Tensor q = c.best->encode_question(b.question, b.question_lengths).contiguous();
    const torch::Tensor key = c.best->memory_query(q).contiguous();
    torch::Tensor r = torch::empty_like(q);
    bank.memory(*i).lookup(CView2::contiguous(key.data_ptr<float>(), {1, key.size(1)}),
                           View2::contiguous(r.data_ptr<float>(), {1, r.size(1)}), lookup_options(c.best));
    logits = c.best->output(r, q, b.candidates)[0];
  } else {
    logits = c.best->forward(b)[0];
  }
  const torch::Tensor p = torch::softmax(logits, 0);
  const auto top = p.topk(std::min<int64_t>(a.top, c.answers.size() - 2));
  for (int64_t k = 0; k < std::get<0>(top).size(0); ++k) {
    const int64_t id = std::get<1>(top)[k].item<int64_t>();
    if (std::isinf(logits[id].item<float>())) break;  // not a candidate of this document
    const auto named = label.find(c.answers.token(id));
    const std::string& text = named == label.end() ? c.answers.token(id) : named->second;
    if (a.top == 1) std::printf("%s\n", text.c_str());
    else std::printf("%s\t%.3f\n", text.c_str(), std::get<0>(top)[k].item<double>());
  }
}

}  // namespace

void add_use_commands(CLI::App& app) {
  auto a = std::make_shared<UseArgs>();
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("--model", a->model, "a checkpoint written by train (its best validation epoch is used)")->required();
    cmd->add_option("--data,--cnn", a->data_dir,
                    "bAbI directory (default: $LINATTN_BABI_DIR or ../shared/data/babi); for a CNN model, its data "
                    "directory when moved since training");
    cmd->add_option("--threads", a->threads, "threads")->check(CLI::Range(1, 1024));
  };
  CLI::App* ev = app.add_subcommand("eval", "Accuracy of a trained model on a split; with --bank, answer from stored memories");
  common(ev);
  ev->add_option("--split", a->split, "test, valid or train");
  ev->add_option("--file", a->file,
                 "evaluate on this file in the bAbI format instead (e.g. another test file); for a CNN model, a "
                 ".question file or a directory of them");
  ev->add_option("--bank", a->bank, "answer from the memories stored by `encode` and compare with the in-graph pass");
  ev->add_option("--results", a->results, "append the stored-answering figures as a JSON line");
  ev->callback([a] { eval(*a); });

  CLI::App* en = app.add_subcommand("encode", "Store every story of a split as a fixed-size memory in a new bank (linear, gated)");
  common(en);
  en->add_option("--bank", a->bank, "the bank file to create (.lamb)")->required();
  en->add_option("--split", a->split, "test, valid or train");
  en->add_flag("--bf16", a->bf16, "store bfloat16 numbers (half the bytes)");
  en->callback([a] { encode(*a); });

  CLI::App* an = app.add_subcommand("answer", "Answer a question about a story file (or a stored memory)");
  common(an);
  an->add_option("--story", a->story,
                 "a text file, one statement per line (bAbI lines accepted); for a CNN model, a .question file");
  an->add_option("--question", a->question,
                 "the question, e.g. \"Where is Mary?\" (a CNN .question file brings its own query; this replaces it)");
  an->add_option("--bank", a->bank, "answer from a memory in this bank instead of a story file");
  an->add_option("--entry", a->entry, "the memory's name in --bank (`linattn bank list`)");
  an->add_option("--top", a->top, "print the K likeliest answers with their probabilities")->check(CLI::Range(1, 100));
  an->footer("Examples:\n  linattn-reader answer --model t1.ckpt --story story.txt --question \"Where is Mary?\"\n"
             "  linattn-reader answer --model cnn.ckpt --story cnn/questions/test/0a1b.question --top 3");
  an->callback([a] { answer(*a); });

  auto sample = std::make_shared<CnnSampleOptions>();
  auto sample_dir = std::make_shared<std::string>();
  CLI::App* cs = app.add_subcommand("cnn-sample", "Write a made-up data set in the CNN layout, to try --cnn without the data");
  cs->add_option("--out", *sample_dir, "the directory to write DIR/questions/{training,validation,test} into")->required();
  cs->add_option("--train", sample->train, "training questions")->check(CLI::Range(1, 10000000));
  cs->add_option("--valid", sample->valid, "validation questions")->check(CLI::Range(1, 10000000));
  cs->add_option("--test", sample->test, "test questions")->check(CLI::Range(1, 10000000));
  cs->add_option("--sentences", sample->sentences, "sentences per document (about 7 tokens each)")->check(CLI::Range(1, 100000));
  cs->add_option("--questions-per-document", sample->questions_per_document, "questions asked of each document")
      ->check(CLI::Range(1, 1000));
  cs->add_option("--seed", sample->seed, "seed of the draws");
  cs->footer("Example:\n  linattn-reader cnn-sample --out cnn-sample && linattn-reader train --cnn cnn-sample --patience 3");
  cs->callback([sample, sample_dir] {
    if (std::filesystem::exists(std::filesystem::path(*sample_dir) / "questions"))
      throw Error(*sample_dir + "/questions exists already: choose a new --out");
    write_cnn_sample(*sample_dir, *sample);
    std::printf("wrote %d training, %d validation and %d test questions under %s/questions\n", sample->train, sample->valid,
                sample->test, sample_dir->c_str());
  });
}

}  // namespace linattn::reader::cli
