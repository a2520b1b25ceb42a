#include "checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <xxhash.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "linattn/core/error.h"
#include "linattn/core/file_io.h"
#include "linattn/memory/memory_file.h"

namespace linattn::reader {
namespace {

constexpr const char* kFormat = "linattn-reader-checkpoint";
constexpr int kVersion = 1;
// The file: a 32-byte header ("LAREADER", u64 payload bytes, u64 XXH3-64 of the payload, u64
// reserved) and LibTorch's archive as the payload. LibTorch's zip reader does not check its
// CRCs, so without this a flipped byte in a weight would load silently.
constexpr char kMagic[8] = {'L', 'A', 'R', 'E', 'A', 'D', 'E', 'R'};
constexpr size_t kHeader = 32;

Vocabulary vocabulary_of(const nlohmann::json& tokens) {
  Vocabulary v;
  const auto list = tokens.get<std::vector<std::string>>();
  if (list.size() < 2 || list[0] != "<pad>" || list[1] != "<unk>") throw Error("a vocabulary must start with <pad>, <unk>");
  for (size_t i = 2; i < list.size(); ++i)
    if (v.add(list[i]) != static_cast<int64_t>(i)) throw Error("duplicate vocabulary token '" + list[i] + "'");
  return v;
}

ReaderOptions reader_options_of(const nlohmann::json& j) {
  return ReaderOptions(j.at("vocab").get<int64_t>(), j.at("answers").get<int64_t>())
      .mechanism(parse_mechanism(j.at("mechanism").get<std::string>()))
      .embedding(j.at("embedding").get<int64_t>())
      .hidden(j.at("hidden").get<int64_t>())
      .layers(j.at("layers").get<int64_t>())
      .bidirectional(j.at("bidirectional").get<bool>())
      .attention(j.at("attention").get<int64_t>())
      .output(j.at("output").get<int64_t>())
      .dropout(j.at("dropout").get<double>())
      .linear_scale(j.at("linear_scale").get<double>())
      .slots(j.value("slots", int64_t{16}))  // files from before the K-slot memory have neither
      .slot_positions(j.value("slot_positions", false));
}

DataSpec data_spec_of(const nlohmann::json& j) {
  DataSpec d;
  d.kind = j.at("kind").get<std::string>();
  d.seed = j.at("seed").get<uint64_t>();
  if (d.kind == "babi") {
    d.task = j.at("task").get<int>();
    d.ten_k = j.at("ten_k").get<bool>();
    d.valid_fraction = j.at("valid_fraction").get<double>();
  } else if (d.kind == "mqar") {
    d.mqar.pairs = j.at("pairs").get<int64_t>();
    d.mqar.vocab = j.at("vocab").get<int64_t>();
    d.mqar.train_sequences = j.at("train_sequences").get<int64_t>();
    d.mqar.valid_sequences = j.at("valid_sequences").get<int64_t>();
    d.mqar.test_sequences = j.at("test_sequences").get<int64_t>();
  } else if (d.kind == "cnn") {
    d.cnn.dir = j.at("dir").get<std::string>();
    d.cnn.max_examples = j.at("max_examples").get<int64_t>();
  } else {
    throw Error("unknown data kind '" + d.kind + "'");
  }
  return d;
}

void copy_parameters(const Reader& from, Reader& to) {
  torch::NoGradGuard no_grad;
  const auto src = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(src[p.key()]);
}

}  // namespace

std::string DataSpec::describe() const {
  if (kind == "mqar") return "MQAR, " + std::to_string(mqar.pairs) + " pairs";
  if (kind == "cnn")
    return "CNN (" + cnn.dir + (cnn.max_examples >= 0 ? ", at most " + std::to_string(cnn.max_examples) + " per split" : "") + ")";
  return "bAbI task " + std::to_string(task) + (ten_k ? " (en-10k)" : " (en)");
}

nlohmann::json to_json(const ReaderOptions& o) {
  return {{"vocab", o.vocab()},         {"answers", o.answers()},   {"mechanism", to_string(o.mechanism())},
          {"embedding", o.embedding()}, {"hidden", o.hidden()},     {"layers", o.layers()},
          {"bidirectional", o.bidirectional()}, {"attention", o.attention()}, {"output", o.output()},
          {"dropout", o.dropout()},     {"linear_scale", o.linear_scale()}, {"slots", o.slots()},
          {"slot_positions", o.slot_positions()}};
}

std::string DataSpec::name() const {
  if (kind == "babi") return ten_k ? "en-10k" : "en";
  return kind;
}

nlohmann::json to_json(const DataSpec& d) {
  if (d.kind == "cnn") return {{"kind", d.kind}, {"seed", d.seed}, {"dir", d.cnn.dir}, {"max_examples", d.cnn.max_examples}};
  if (d.kind == "mqar")
    return {{"kind", d.kind}, {"seed", d.seed}, {"pairs", d.mqar.pairs}, {"vocab", d.mqar.vocab},
            {"train_sequences", d.mqar.train_sequences}, {"valid_sequences", d.mqar.valid_sequences},
            {"test_sequences", d.mqar.test_sequences}};
  return {{"kind", d.kind}, {"seed", d.seed}, {"task", d.task}, {"ten_k", d.ten_k}, {"valid_fraction", d.valid_fraction}};
}

nlohmann::json to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch}, {"loss", r.loss}, {"train_accuracy", r.train_accuracy},
          {"valid_accuracy", r.valid_accuracy}, {"seconds", r.seconds}};
}

Dataset load_dataset(const DataSpec& spec, const std::string& data_dir, const Vocabulary* words,
                     const Vocabulary* answers, bool need_training) {
  if (spec.kind == "mqar") return mqar_dataset(spec.mqar, spec.seed);  // ids do not depend on the draws
  if (spec.kind == "cnn") {
    CnnReaderOptions o = spec.cnn;
    if (!data_dir.empty()) o.dir = data_dir;
    o.read_training = need_training;
    return cnn_dataset(o, spec.seed, words, answers, stderr);
  }
  const std::string root = find_babi_root(data_dir.empty() ? std::nullopt : std::optional<std::string>(data_dir));
  const BabiTask task = load_babi(root, spec.task, spec.ten_k, spec.valid_fraction, spec.seed);
  return words && answers ? babi_dataset(task, *words, *answers) : babi_dataset(task);
}

double default_learning_rate(Mechanism m) { return m == Mechanism::softmax ? 3e-4 : 1e-3; }

Checkpoint Checkpoint::start(const ReaderOptions& options, const DataSpec& data, const TrainSettings& settings,
                             const Vocabulary& words, const Vocabulary& answers) {
  Checkpoint c;
  c.model_options = options;
  c.data = data;
  c.settings = settings;
  c.words = words;
  c.answers = answers;
  torch::manual_seed(settings.seed);
  c.model = Reader(options);
  c.best = Reader(options);
  copy_parameters(c.model, c.best);
  c.adam = std::make_unique<torch::optim::Adam>(c.model->parameters(), torch::optim::AdamOptions(settings.lr));
  return c;
}

nlohmann::json Checkpoint::describe() const {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& r : progress.curve) curve.push_back(to_json(r));
  return {{"format", kFormat},
          {"version", kVersion},
          {"model", to_json(model_options)},
          {"data", to_json(data)},
          {"settings",
           {{"epochs", settings.epochs}, {"batch", settings.batch}, {"lr", settings.lr}, {"clip", settings.clip},
            {"seed", settings.seed}, {"checkpoint_every", settings.checkpoint_every}, {"patience", settings.patience}}},
          {"words", words.tokens()},
          {"answers", answers.tokens()},
          {"progress",
           {{"epochs_done", progress.epochs_done}, {"step_in_epoch", progress.step_in_epoch},
            {"loss_sum", progress.loss_sum}, {"seen", progress.seen}, {"correct", progress.correct},
            {"best_valid", progress.best_valid}, {"best_epoch", progress.best_epoch},
            {"seconds", progress.seconds}, {"stopped_early", progress.stopped_early}, {"curve", curve}}}};
}

void Checkpoint::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(describe().dump()));
  torch::serialize::OutputArchive current, best_weights, optimizer;
  model->save(current);
  best->save(best_weights);
  adam->save(optimizer);
  archive.write("model", current);
  archive.write("best", best_weights);
  archive.write("optimizer", optimizer);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng", gen.get_state());
  }
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string payload = bytes.str();
  std::string file(kHeader, '\0');
  const uint64_t size = payload.size(), hash = XXH3_64bits(payload.data(), payload.size());
  std::memcpy(file.data(), kMagic, 8);
  std::memcpy(file.data() + 8, &size, 8);
  std::memcpy(file.data() + 16, &hash, 8);
  file += payload;
  write_file_atomic(path, std::span(reinterpret_cast<const std::byte*>(file.data()), file.size()));
}

Checkpoint Checkpoint::load(const std::string& path) {
  Checkpoint c;
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FormatError(path + ": cannot open (no such file, or not readable)");
    std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t size = 0, hash = 0;
    if (file.size() < kHeader || std::memcmp(file.data(), kMagic, 8) != 0) throw Error("no linattn-reader header");
    std::memcpy(&size, file.data() + 8, 8);
    std::memcpy(&hash, file.data() + 16, 8);
    if (size != file.size() - kHeader)
      throw Error("truncated or extended: " + std::to_string(file.size() - kHeader) + " payload bytes, header says " +
                  std::to_string(size));
    if (XXH3_64bits(file.data() + kHeader, size) != hash) throw Error("checksum mismatch: the file is corrupted");
    torch::serialize::InputArchive archive;
    archive.load_from(file.data() + kHeader, size);
    c10::IValue meta;
    if (!archive.try_read("meta", meta) || !meta.isString()) throw Error("no description record");
    const auto j = nlohmann::json::parse(meta.toStringRef());
    if (j.at("format") != kFormat) throw Error("not a linattn-reader checkpoint");
    if (j.at("version").get<int>() != kVersion)
      throw Error("checkpoint version " + j.at("version").dump() + " (this build reads " + std::to_string(kVersion) + ")");
    c.model_options = reader_options_of(j.at("model"));
    c.data = data_spec_of(j.at("data"));
    const auto& s = j.at("settings");
    c.settings = {s.at("epochs").get<int>(), s.at("batch").get<int64_t>(), s.at("lr").get<double>(),
                  s.at("clip").get<double>(), s.at("seed").get<uint64_t>(), s.at("checkpoint_every").get<int64_t>(),
                  s.value("patience", 0)};  // checkpoints from before patience trained every epoch
    c.words = vocabulary_of(j.at("words"));
    c.answers = vocabulary_of(j.at("answers"));
    if (c.words.size() != c.model_options.vocab() || c.answers.size() != c.model_options.answers())
      throw Error("vocabulary sizes disagree with the model's");
    const auto& p = j.at("progress");
    c.progress.epochs_done = p.at("epochs_done").get<int>();
    c.progress.step_in_epoch = p.at("step_in_epoch").get<int64_t>();
    c.progress.loss_sum = p.at("loss_sum").get<double>();
    c.progress.seen = p.at("seen").get<int64_t>();
    c.progress.correct = p.at("correct").get<int64_t>();
    c.progress.best_valid = p.at("best_valid").get<double>();
    c.progress.best_epoch = p.at("best_epoch").get<int>();
    c.progress.seconds = p.at("seconds").get<double>();
    c.progress.stopped_early = p.value("stopped_early", false);
    for (const auto& r : p.at("curve"))
      c.progress.curve.push_back({r.at("epoch").get<int>(), r.at("loss").get<double>(), r.at("train_accuracy").get<double>(),
                                  r.at("valid_accuracy").get<double>(), r.at("seconds").get<double>()});
    c.model = Reader(c.model_options);
    c.best = Reader(c.model_options);
    torch::serialize::InputArchive current, best_weights, optimizer;
    archive.read("model", current);
    archive.read("best", best_weights);
    archive.read("optimizer", optimizer);
    c.model->load(current);
    c.best->load(best_weights);
    c.adam = std::make_unique<torch::optim::Adam>(c.model->parameters(), torch::optim::AdamOptions(c.settings.lr));
    c.adam->load(optimizer);
    torch::Tensor rng;
    archive.read("rng", rng);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  } catch (const FormatError&) {
    throw;
  } catch (const c10::Error& e) {
    throw FormatError(path + ": not a readable linattn-reader checkpoint (" + std::string(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {
    throw FormatError(path + ": not a readable linattn-reader checkpoint (" + std::string(e.what()) + ")");
  }
  return c;
}

}  // namespace linattn::reader
