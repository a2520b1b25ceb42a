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
  }
  return "unknown";
}

Mechanism parse_mechanism(const std::string& name) {
  for (Mechanism m : {Mechanism::none, Mechanism::softmax, Mechanism::linear, Mechanism::gated_scalar,
                      Mechanism::gated_vector})
    if (to_string(m) == name) return m;
  throw Error("unknown attention mechanism '" + name + "' (none, softmax, linear, gated-scalar, gated-vector)");
}

ReaderImpl::ReaderImpl(const ReaderOptions& o) : options(o) {
  const int64_t d = o.hidden();
  embed = register_module("embed", torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab(), o.embedding()).padding_idx(0)));
  story_rnn = register_module("story_rnn", torch::nn::GRU(torch::nn::GRUOptions(o.embedding(), d).batch_first(true)));
  question_rnn = register_module("question_rnn", torch::nn::GRU(torch::nn::GRUOptions(o.embedding(), d).batch_first(true)));
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
  }
}

torch::Tensor ReaderImpl::encode_story(const torch::Tensor& story) {
  // Unidirectional: a valid position's state never depends on the padding after it.
  return std::get<0>(story_rnn(dropout(embed(story))));
}

torch::Tensor ReaderImpl::encode_question(const torch::Tensor& question, const torch::Tensor& lengths) {
  const torch::Tensor states = std::get<0>(question_rnn(dropout(embed(question))));  // [B, Q, d]
  const torch::Tensor last = (lengths - 1).clamp_min(0).view({-1, 1, 1}).expand({states.size(0), 1, states.size(2)});
  return states.gather(1, last).squeeze(1);
}

torch::Tensor ReaderImpl::attend(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths) {
  switch (options.mechanism()) {
    case Mechanism::none: return none->forward(h, q, lengths);
    case Mechanism::softmax: return softmax->forward(h, q, lengths);
    case Mechanism::linear: return linear->forward(h, q, lengths);
    default: return gated->forward(h, q, lengths);
  }
}

torch::Tensor ReaderImpl::output(const torch::Tensor& r, const torch::Tensor& q, const torch::Tensor& candidates) {
  torch::Tensor logits = w_o(torch::tanh(w_r(dropout(r)) + w_q(q)));
  if (candidates.defined()) logits = logits.masked_fill(~candidates, -std::numeric_limits<float>::infinity());
  return logits;
}

torch::Tensor ReaderImpl::forward(const ReaderBatch& b) {
  const torch::Tensor q = encode_question(b.question, b.question_lengths);
  const torch::Tensor h = encode_story(b.story);
  return output(attend(h, q, b.story_lengths), q, b.candidates);
}

}  // namespace linattn::reader
