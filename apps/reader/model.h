// The authors' reader (docs/math.md, docs/reader.md): shared word embeddings, a GRU over the story and one
// over the question, attention over the story states with the question encoding as the query,
// and an output layer softmax over candidates of W_o tanh(W_r r + W_q q).
#pragma once

#include <torch/torch.h>

#include <string>

#include "linattn/torch/modules.h"

namespace linattn::reader {

enum class Mechanism { none, softmax, linear, gated_scalar, gated_vector, galerkin, lambda, kslot };
std::string to_string(Mechanism m);
// "none", "softmax", "linear", "gated-scalar", "gated-vector", "galerkin", "lambda", "kslot";
// throws linattn::Error otherwise.
Mechanism parse_mechanism(const std::string& name);

// How a mechanism's fixed-size memory C [dk, d] answers: r = scale C^T phi(q) (/ n when mean),
// phi(q) = q except for the K-slot memory (its read weights, dk = K). Linear, gated and Galerkin
// memories are symmetric (stored packed); the lambda's and the K-slot one's are not.
struct MemoryReadout {
  bool symmetric = true, mean = true;
  double scale = 1.0;
};

struct ReaderOptions {
  ReaderOptions(int64_t vocab, int64_t answers) : vocab_(vocab), answers_(answers) {}
  TORCH_ARG(int64_t, vocab);
  TORCH_ARG(int64_t, answers);
  TORCH_ARG(Mechanism, mechanism) = Mechanism::linear;
  TORCH_ARG(int64_t, embedding) = 64;
  TORCH_ARG(int64_t, hidden) = 64;          // GRU units (per direction)
  TORCH_ARG(int64_t, layers) = 1;           // stacked GRU layers
  TORCH_ARG(bool, bidirectional) = false;   // states are then [forward; backward], 2 * hidden wide
  TORCH_ARG(int64_t, attention) = 100;      // the additive scorer's width (softmax)
  TORCH_ARG(int64_t, output) = 100;         // the output layer's width
  TORCH_ARG(double, dropout) = 0.0;
  // Linear and gated linear read-outs are scale * C q / n. The authors' code uses 1000; with
  // GRU states of norm ~1-8 that saturates tanh(W_r r) here. Measured on bAbI task 1 (en, seed 1,
  // 20 epochs, test accuracy of linear attention): scale 1: 0.48, 10: 0.64, 30: 0.54, 100: 0.43,
  // 1000: 0.18 (chance). Hence 10.
  TORCH_ARG(double, linear_scale) = 10.0;
  TORCH_ARG(int64_t, slots) = 16;             // the K-slot memory's K
  TORCH_ARG(bool, slot_positions) = false;    // ... with the authors' position encoding
};

// A padded batch: token ids (0 = padding) and lengths.
struct ReaderBatch {
  torch::Tensor story, story_lengths;        // [B, T] int64, [B] int64
  torch::Tensor question, question_lengths;  // [B, Q] int64, [B] int64
  torch::Tensor answers;                     // [B] int64 (answer ids)
  torch::Tensor candidates;                  // [B, answers] bool, or undefined (every answer allowed)
};

class ReaderImpl : public torch::nn::Module {
 public:
  explicit ReaderImpl(const ReaderOptions& options);
  // Logits over the answers [B, answers]; non-candidates get -inf.
  torch::Tensor forward(const ReaderBatch& batch);
  // The width of the story states and of the question encoding: hidden, doubled when bidirectional.
  int64_t state_size() const { return options.hidden() * (options.bidirectional() ? 2 : 1); }
  // The question encoding q [B, state_size]: the question GRU's state at its last valid token
  // (bidirectional: the backward half at the first token).
  torch::Tensor encode_question(const torch::Tensor& question, const torch::Tensor& lengths);
  // The story states h [B, T, state_size]; padding positions hold garbage, never read.
  torch::Tensor encode_story(const torch::Tensor& story, const torch::Tensor& lengths);
  // The attention read-out r [B, hidden].
  torch::Tensor attend(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lengths);
  // Linear, gated linear, Galerkin and content-lambda attention: the story's fixed-size memory
  // C [B, d, d], read out as memory_readout() says (lookup_memory). Throws linattn::Error for
  // the other mechanisms.
  bool has_fixed_size_memory() const;
  torch::Tensor encode_memory(const torch::Tensor& h, const torch::Tensor& lengths);
  MemoryReadout memory_readout() const;
  // What a stored Memory is looked up with [B, dk]: the K-slot query scores (the Memory
  // softmaxes them), else q.
  torch::Tensor memory_query(const torch::Tensor& q);
  // The stored Memory's kind, and the numbers it keeps beside the state [B, 2 d] for the
  // content lambda (exp-sums 1 and channel maxima logsumexp_t h: A = lambda exactly, and the
  // memory can be written on); undefined for the others.
  MemoryKind memory_kind() const;
  torch::Tensor memory_normalizer(const torch::Tensor& h, const torch::Tensor& lengths);
  int64_t memory_key_width() const;  // dk: K for the K-slot memory, else state_size()
  // r [B, d] from memories C [B, dk, d], questions q [B, d] and story lengths [B].
  torch::Tensor lookup_memory(const torch::Tensor& C, const torch::Tensor& q, const torch::Tensor& lengths);
  // The answer logits from r and q.
  torch::Tensor output(const torch::Tensor& r, const torch::Tensor& q, const torch::Tensor& candidates);

  ReaderOptions options;
  // Runs `rnn` over the embedded tokens; bidirectional GRUs see only the valid tokens (packed).
  torch::Tensor run_rnn(torch::nn::GRU& rnn, const torch::Tensor& tokens, const torch::Tensor& lengths);
  torch::nn::Embedding embed{nullptr};
  torch::nn::GRU story_rnn{nullptr}, question_rnn{nullptr};
  torch::nn::Linear w_r{nullptr}, w_q{nullptr}, w_o{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch_ext::SoftmaxAttention softmax{nullptr};
  torch_ext::LinearAttention linear{nullptr};
  torch_ext::GatedLinearAttention gated{nullptr};
  torch_ext::NoAttention none{nullptr};
  torch_ext::GalerkinAttention galerkin{nullptr};
  torch_ext::ContentLambda lambda{nullptr};
  torch_ext::KSlotMemory kslot{nullptr};
};
TORCH_MODULE(Reader);

}  // namespace linattn::reader
