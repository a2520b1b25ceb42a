#include "model.h"

#include "linattn/core/error.h"

namespace linattn::reader {

std::string to_string(Mechanism m) {
  switch (m) {
    case Mechanism::none: return "none";
    case Mechanism::softmax: return "softmax";
    case Mechanism::linear: return "linear";
    case Mechanism::gated_scalar: return "gated-scalar";
    case Mechanism::gated_vector: return "gated-vector";
    case Mechanism::galerkin: return "galerkin";
    case Mechanism::lambda: return "lambda";
    case Mechanism::kslot: return "kslot";
  }
  return "unknown";
}

Mechanism parse_mechanism(const std::string& name) {
  for (Mechanism m : {Mechanism::none, Mechanism::softmax, Mechanism::linear, Mechanism::gated_scalar,
                      Mechanism::gated_vector, Mechanism::galerkin, Mechanism::lambda, Mechanism::kslot})
    if (to_string(m) == name) return m;
  throw Error("unknown attention mechanism '" + name +
              "' (none, softmax, linear, gated-scalar, gated-vector, galerkin, lambda, kslot)");
}

ReaderImpl::ReaderImpl(const ReaderOptions& o) : options(o) {
  if (o.vocab() < 2 || o.answers() < 3 || o.hidden() < 1 || o.embedding() < 1 || o.layers() < 1 ||
      o.attention() < 1 || o.output() < 1 || !(o.dropout() >= 0 && o.dropout() < 1) || !(o.linear_scale() > 0) || o.slots() < 1)
    throw Error("reader: needs vocab >= 2, answers >= 3, sizes, layers and slots >= 1, dropout in [0, 1), linear scale > 0");
  const int64_t d = state_size();
  auto gru = [&] {
    return torch::nn::GRU(torch::nn::GRUOptions(o.embedding(), o.hidden())
                              .batch_first(true)
                              .num_layers(o.layers())
                              .bidirectional(o.bidirectional()));
  };
  embed = register_module("embed", torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab(), o.embedding()).padding_idx(0)));
  story_rnn = register_module("story_rnn", gru());
  question_rnn = register_module("question_rnn", gru());
  w_r = register_module("w_r", torch::nn::Linear(d, o.output()));
  w_q = register_module("w_q", torch::nn::Linear(torch::nn::LinearOptions(d, o.output()).bias(false)));
  w_o = register_module("w_o", torch::nn::Linear(o.output(), o.answers()));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout()));
  switch (o.mechanism()) {
    case Mechanism::none: none = register_module("attention", torch_ext::NoAttention()); break;
    case Mechanism::softmax:
      softmax = register_module("attention", torch_ext::SoftmaxAttention(
                                                 torch_ext::SoftmaxAttentionModuleOptions(d, d).attention_size(o.attention())));
      break;
    case Mechanism::linear:
      linear = register_module("attention", torch_ext::LinearAttention(torch_ext::LinearAttentionModuleOptions().scale(o.linear_scale())));
      break;
    case Mechanism::gated_scalar:
    case Mechanism::gated_vector:
      gated = register_module("attention", torch_ext::GatedLinearAttention(
                                               torch_ext::GatedLinearAttentionModuleOptions(d)
                                                   .gate(o.mechanism() == Mechanism::gated_scalar ? torch_ext::GateKind::scalar
                                                                                                  : torch_ext::GateKind::vector)
                                                   .scale(o.linear_scale())));
      break;
    case Mechanism::galerkin: galerkin = register_module("attention", torch_ext::GalerkinAttention()); break;
    case Mechanism::lambda: lambda = register_module("attention", torch_ext::ContentLambda()); break;
    case Mechanism::kslot:
      kslot = register_module("attention", torch_ext::KSlotMemory(torch_ext::KSlotMemoryModuleOptions(d, d, o.slots())
                                                                       .position_encoding(o.slot_positions())));
      break;
  }
}

torch::Tensor ReaderImpl::run_rnn(torch::nn::GRU& rnn, const torch::Tensor& tokens, const torch::Tensor& lengths) {
  const torch::Tensor x = dropout(embed(tokens));
  // Unidirectional: a valid position's state never depends on the padding after it.
  if (!options.bidirectional()) return std::get<0>(rnn(x));
  // Bidirectional: the backward direction must start at each sequence's own last token.
  namespace rnn_utils = torch::nn::utils::rnn;
  const auto packed = rnn_utils::pack_padded_sequence(x, lengths.clamp_min(1), /*batch_first=*/true,
                                                      /*enforce_sorted=*/false);
  const auto out = std::get<0>(rnn->forward_with_packed_input(packed));
  return std::get<0>(rnn_utils::pad_packed_sequence(out, /*batch_first=*/true, 0.0, tokens.size(1)));
}

torch::Tensor ReaderImpl::encode_story(const torch::Tensor& story, const torch::Tensor& lengths) {
  return run_rnn(story_rnn, story, lengths);
}

torch::Tensor ReaderImpl::encode_question(const torch::Tensor& question, const torch::Tensor& lengths) {
  const torch::Tensor states = run_rnn(question_rnn, question, lengths);  // [B, Q, state_size]
  const torch::Tensor last = (lengths - 1).clamp_min(0).view({-1, 1, 1}).expand({states.size(0), 1, states.size(2)});
  const torch::Tensor forward_last = states.gather(1, last).squeeze(1);
  if (!options.bidirectional()) return forward_last;
  const int64_t h = options.hidden();
  return torch::cat({forward_last.narrow(1, 0, h), states.select(1, 0).narrow(1, h, h)}, 1);
}

torch::Tensor ReaderImpl::attend(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  switch (options.mechanism()) {
    case Mechanism::none: return none->forward(h, q, lengths);
    case Mechanism::softmax: return softmax->forward(h, q, lengths);
    case Mechanism::linear: return linear->forward(h, q, lengths);
    case Mechanism::galerkin: return galerkin->forward(h, q, lengths);
    case Mechanism::lambda: return lambda->forward(h, q, lengths);
    case Mechanism::kslot: return kslot->forward(h, q, lengths);
    default: return gated->forward(h, q, lengths);
  }
}

bool ReaderImpl::has_fixed_size_memory() const {
  return options.mechanism() != Mechanism::none && options.mechanism() != Mechanism::softmax;
}

torch::Tensor ReaderImpl::encode_memory(const torch::Tensor& h, const torch::Tensor& lengths) {
  switch (options.mechanism()) {
    case Mechanism::linear: return linear->encode(h, lengths);
    case Mechanism::gated_scalar:
    case Mechanism::gated_vector: return gated->encode(h, lengths);
    case Mechanism::galerkin: return galerkin->encode(h, lengths);
    case Mechanism::lambda: return lambda->encode(h, lengths);
    case Mechanism::kslot: return kslot->encode(h, lengths);
    default:
      throw Error("a " + to_string(options.mechanism()) +
                  " reader has no fixed-size memory (linear, gated linear, galerkin, lambda and kslot do)");
  }
}

MemoryReadout ReaderImpl::memory_readout() const {
  switch (options.mechanism()) {
    case Mechanism::galerkin: return {.symmetric = true, .mean = true, .scale = 1.0};
    case Mechanism::lambda:
    case Mechanism::kslot: return {.symmetric = false, .mean = false, .scale = 1.0};
    default: return {.symmetric = true, .mean = true, .scale = options.linear_scale()};
  }
}

torch::Tensor ReaderImpl::memory_query(const torch::Tensor& q) {
  return options.mechanism() == Mechanism::kslot ? kslot->query_scores(q) : q;
}

MemoryKind ReaderImpl::memory_kind() const {
  switch (options.mechanism()) {
    case Mechanism::galerkin: return MemoryKind::galerkin;
    case Mechanism::lambda: return MemoryKind::content_lambda;
    case Mechanism::kslot: return MemoryKind::kslot;
    default: return MemoryKind::linear;
  }
}

torch::Tensor ReaderImpl::memory_normalizer(const torch::Tensor& h, const torch::Tensor& lengths) {
  if (options.mechanism() != Mechanism::lambda) return {};
  const torch::Tensor valid = (torch::arange(h.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2);
  torch::Tensor lse = torch::logsumexp(h.masked_fill(~valid, -std::numeric_limits<float>::infinity()), 1);  // [B, d]
  lse = torch::where(lengths.unsqueeze(1) > 0, lse, torch::zeros_like(lse));  // an empty story: nothing written
  const torch::Tensor sums = (lengths.unsqueeze(1) > 0).to(h.scalar_type()).expand_as(lse);
  return torch::cat({sums, lse}, 1);
}

int64_t ReaderImpl::memory_key_width() const {
  return options.mechanism() == Mechanism::kslot ? options.slots() : state_size();
}

torch::Tensor ReaderImpl::lookup_memory(const torch::Tensor& C, const torch::Tensor& q, const torch::Tensor& lengths) {
  const MemoryReadout m = memory_readout();
  const torch::Tensor key = options.mechanism() == Mechanism::kslot ? kslot->read_weights(q) : q;
  torch::Tensor r = torch::matmul(C.transpose(1, 2), key.unsqueeze(2)).squeeze(2) * m.scale;
  if (m.mean) r = r / lengths.clamp_min(1).to(r.scalar_type()).unsqueeze(1);
  return r;
}

torch::Tensor ReaderImpl::output(const torch::Tensor& r, const torch::Tensor& q, const torch::Tensor& candidates) {
  torch::Tensor logits = w_o(torch::tanh(w_r(dropout(r)) + w_q(q)));
  if (candidates.defined()) logits = logits.masked_fill(~candidates, -std::numeric_limits<float>::infinity());
  return logits;
}

torch::Tensor ReaderImpl::forward(const ReaderBatch& b) {
  const torch::Tensor q = encode_question(b.question, b.question_lengths);
  const torch::Tensor h = encode_story(b.story, b.story_lengths);
  return output(attend(h, q, b.story_lengths), q, b.candidates);
}

}  // namespace linattn::reader
