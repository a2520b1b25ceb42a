// The LibTorch layer against naive LibTorch formulations (plain tensor ops + autograd, run in
// float64): forward and every gradient within 1e-5 relative (norm-wise), padding included.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "linattn/torch/modules.h"
#include "naive_attention.h"

namespace linattn::torch_ext {
namespace {

double rel(const torch::Tensor& a, const torch::Tensor& ref) {
  const double den = ref.abs().max().item<double>();
  return (a.to(torch::kFloat64) - ref).abs().max().item<double>() / (den > 0 ? den : 1.0);
}

// A batch with mixed lengths (one of length 1) and junk in the padding.
struct Batch {
  torch::Tensor h, q, lengths, mask;  // mask [B, T, 1] of valid positions (float64)
};

Batch batch(int64_t B, int64_t T, int64_t d, int64_t dq) {
  torch::manual_seed(7);
  Batch x;
  x.h = torch::randn({B, T, d}) * 0.5;
  x.q = torch::randn({B, dq}) * 0.5;
  std::vector<int64_t> len(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) len[static_cast<size_t>(b)] = b == 0 ? T : (b == 1 ? 1 : 1 + (b * 7) % T);
  x.lengths = torch::tensor(len, torch::kInt64);
  x.mask = (torch::arange(T).unsqueeze(0) < x.lengths.unsqueeze(1)).unsqueeze(2).to(torch::kFloat64);
  x.h = x.h + (1 - x.mask.to(torch::kFloat32)) * 37.f;  // padding that would show if it leaked
  return x;
}

// Runs ours (float32) and the naive one (float64) on the same leaves; compares outputs and grads.
void compare(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& ours,
             const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& naive,
             const std::vector<torch::Tensor>& inputs, const std::vector<std::string>& names) {
  std::vector<torch::Tensor> a, b;
  for (const auto& t : inputs) {
    a.push_back(t.detach().clone().set_requires_grad(true));
    b.push_back(t.detach().to(torch::kFloat64).set_requires_grad(true));
  }
  const torch::Tensor ra = ours(a), rb = naive(b);
  EXPECT_LE(rel(ra, rb), 1e-5) << "forward";
  const torch::Tensor R = torch::randn(ra.sizes());
  (ra * R).sum().backward();
  (rb * R.to(torch::kFloat64)).sum().backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(a[i].grad().defined()) << names[i];
    EXPECT_LE(rel(a[i].grad(), b[i].grad()), 1e-5) << "gradient of " << names[i];
  }
}

TEST(TorchModules, SoftmaxAttentionAdditiveMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6, dq = 5;
  const Batch x = batch(B, T, d, dq);
  SoftmaxAttention m(SoftmaxAttentionModuleOptions(d, dq).attention_size(7));
  compare(
      [&](const std::vector<torch::Tensor>& in) {
        return additive_attention(in[1].unsqueeze(1).unsqueeze(1), in[0].unsqueeze(1), in[0].unsqueeze(1), in[2],
                                  in[3], in[4], in[5], x.lengths)
            .squeeze(2)
            .squeeze(1);
      },
      [&](const std::vector<torch::Tensor>& in) { return naive::additive(in[0], in[1], x.mask, in[2], in[3], in[4], in[5]); },
      {x.h, x.q, m->w_h, m->w_q, m->bias + 0.1, m->w}, {"h", "q", "w_h", "w_q", "bias", "w"});
  // The module runs the same function.
  const auto r = m->forward(x.h, x.q, x.lengths);
  EXPECT_EQ(r.sizes(), (std::vector<int64_t>{B, d}));
}

TEST(TorchModules, SoftmaxAttentionDotMatchesNaive) {
  const int64_t B = 3, T = 8, d = 6;
  const Batch x = batch(B, T, d, d);
  compare(
      [&](const std::vector<torch::Tensor>& in) {
        return softmax_attention(in[1].unsqueeze(1).unsqueeze(1), in[0].unsqueeze(1), in[0].unsqueeze(1), x.lengths)
            .squeeze(2)
            .squeeze(1);
      },
      [&](const std::vector<torch::Tensor>& in) { return naive::dot(in[0], in[1], x.mask); },
      {x.h, x.q}, {"h", "q"});
}

TEST(TorchModules, LinearAttentionMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6;
  const Batch x = batch(B, T, d, d);
  LinearAttention m;
  compare([&](const std::vector<torch::Tensor>& in) { return m->forward(in[0], in[1], x.lengths); },
          [&](const std::vector<torch::Tensor>& in) { return naive::linear(in[0], in[1], x.mask, x.lengths); },
          {x.h, x.q}, {"h", "q"});
}

TEST(TorchModules, GatedLinearAttentionMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6;
  const Batch x = batch(B, T, d, d);
  for (GateKind kind : {GateKind::scalar, GateKind::vector}) {
    GatedLinearAttention m(GatedLinearAttentionModuleOptions(d).gate(kind));
    // The authors' initialisation: every gate starts at sigmoid(1).
    EXPECT_EQ(m->w.abs().sum().item<float>(), 0.f);
    EXPECT_TRUE(torch::all(m->b == 1).item<bool>());
    // Move off the initial point so that the weight gradients are exercised in general position.
    const auto w0 = torch::randn(m->w.sizes()) * 0.3, b0 = m->b.detach() + torch::randn(m->b.sizes()) * 0.3;
    compare(
        [&](const std::vector<torch::Tensor>& in) {
          // Through the module's own code path, with these leaves as its parameters.
          const int64_t Bn = in[0].size(0), Tn = in[0].size(1);
          const auto flat = in[0].reshape({Bn * Tn, d});
          torch::Tensor C;
          if (kind == GateKind::scalar) {
            const auto g = scalar_gate(flat, in[2], in[3]).reshape({Bn, 1, Tn});
            C = linear_attention_encode(in[0].unsqueeze(1), in[0].unsqueeze(1), g * g, x.lengths);
          } else {
            const auto gated = vector_gate(flat, in[2], in[3]).reshape({Bn, 1, Tn, d});
            C = linear_attention_encode(gated, gated, {}, x.lengths);
          }
          return linear_attention_lookup(in[1].unsqueeze(1).unsqueeze(1), C, x.lengths, 1000.0).squeeze(2).squeeze(1);
        },
        [&](const std::vector<torch::Tensor>& in) {
          const auto gated = kind == GateKind::scalar ? naive::scalar_gated(in[0], in[2], in[3]) : naive::vector_gated(in[0], in[2], in[3]);
          return naive::linear(gated, in[1], x.mask, x.lengths);
        },
        {x.h, x.q, w0, b0}, {"h", "q", "gate w", "gate b"});
    // The module, given the same parameters, agrees with the naive formulation too.
    {
      torch::NoGradGuard no_grad;
      m->w.copy_(w0);
      m->b.copy_(b0);
    }
    const auto r = m->forward(x.h, x.q, x.lengths);
    EXPECT_EQ(r.sizes(), (std::vector<int64_t>{B, d}));
    const auto h64 = x.h.to(torch::kFloat64), w64 = w0.to(torch::kFloat64), b64 = b0.to(torch::kFloat64);
    const auto gated = kind == GateKind::scalar ? naive::scalar_gated(h64, w64, b64) : naive::vector_gated(h64, w64, b64);
    const auto expected = naive::linear(gated, x.q.to(torch::kFloat64), x.mask, x.lengths);
    EXPECT_LE(rel(r, expected), 1e-5);
  }
}

// Galerkin: r = (LN(h)^T LN(h) / n) q over the valid positions; the stored memory, read with the
// mean, gives the same r.
TEST(TorchModules, GalerkinAttentionMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6;
  const Batch x = batch(B, T, d, d);
  GalerkinAttention m;
  auto naive = [&](const std::vector<torch::Tensor>& in) {
    const torch::Tensor hn = torch::layer_norm(in[0], {d}, {}, {}, 1e-5) * x.mask;
    const torch::Tensor M = torch::matmul(hn.transpose(1, 2), hn) / x.lengths.to(torch::kFloat64).view({-1, 1, 1});
    return torch::matmul(M, in[1].unsqueeze(2)).squeeze(2);
  };
  compare([&](const std::vector<torch::Tensor>& in) { return m->forward(in[0], in[1], x.lengths); }, naive, {x.h, x.q},
          {"h", "q"});
  const torch::Tensor C = m->encode(x.h, x.lengths);
  const torch::Tensor stored = torch::matmul(C, x.q.unsqueeze(2)).squeeze(2) / x.lengths.to(torch::kFloat32).unsqueeze(1);
  EXPECT_LE(rel(stored, naive({x.h.to(torch::kFloat64), x.q.to(torch::kFloat64)})), 1e-5);
}

// Content lambda: lambda = softmax over valid positions of h (per channel)^T h, r = lambda^T q;
// encode gives lambda itself, and refuses to be differentiated.
TEST(TorchModules, ContentLambdaMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6;
  const Batch x = batch(B, T, d, d);
  ContentLambda m;
  auto naive_lambda = [&](const torch::Tensor& h) {
    const torch::Tensor w = torch::softmax(h.masked_fill(x.mask == 0, -INFINITY), 1);  // over positions
    return torch::matmul(w.transpose(1, 2), h * x.mask);                              // [B, d, d]
  };
  compare([&](const std::vector<torch::Tensor>& in) { return m->forward(in[0], in[1], x.lengths); },
          [&](const std::vector<torch::Tensor>& in) {
            return torch::matmul(naive_lambda(in[0]).transpose(1, 2), in[1].unsqueeze(2)).squeeze(2);
          },
          {x.h, x.q}, {"h", "q"});
  EXPECT_LE(rel(m->encode(x.h, x.lengths), naive_lambda(x.h.to(torch::kFloat64))), 1e-5);
  EXPECT_THROW(m->encode(x.h.clone().set_requires_grad(true), x.lengths), c10::Error);
}

// K-slot: C = sum_t (softmax(W_a h_t + b_a) (*) l_t) h_t^T over the valid positions,
// r = C^T softmax(W_b q + b_b); every parameter's gradient, and the stored memory read alone.
TEST(TorchModules, KSlotMemoryMatchesNaive) {
  const int64_t B = 4, T = 9, d = 6, dq = 5, K = 3;
  const Batch x = batch(B, T, d, dq);
  for (bool positions : {false, true}) {
    KSlotMemory m(KSlotMemoryModuleOptions(d, dq, K).position_encoding(positions));
    auto ours = [&](const std::vector<torch::Tensor>& in) {
      const torch::Tensor s = torch::nn::functional::linear(in[0], in[2], in[3]);
      const torch::Tensor u = torch::nn::functional::linear(in[1], in[4], in[5]);
      return kslot_memory_attention(u.unsqueeze(1).unsqueeze(1), s.unsqueeze(1), in[0].unsqueeze(1), x.lengths, positions)
          .squeeze(2)
          .squeeze(1);
    };
    auto naive = [&](const std::vector<torch::Tensor>& in) {
      torch::Tensor a = torch::softmax(torch::nn::functional::linear(in[0], in[2], in[3]), 2) * x.mask;  // [B, T, K]
      if (positions) {
        const torch::Tensor n = x.lengths.to(torch::kFloat64).view({-1, 1, 1});
        const torch::Tensor t = (torch::arange(T, torch::kFloat64) + 1).view({1, -1, 1}) / n;
        const torch::Tensor k = ((torch::arange(K, torch::kFloat64) + 1) / K).view({1, 1, -1});
        a = a * ((1 - k) * (1 - t) + k * t);
      }
      const torch::Tensor C = torch::matmul(a.transpose(1, 2), in[0] * x.mask);  // [B, K, d]
      const torch::Tensor beta = torch::softmax(torch::nn::functional::linear(in[1], in[4], in[5]), 1);
      return torch::matmul(C.transpose(1, 2), beta.unsqueeze(2)).squeeze(2);
    };
    compare(ours, naive, {x.h, x.q, m->w_a, m->b_a + 0.1, m->w_b, m->b_b - 0.2}, {"h", "q", "w_a", "b_a", "w_b", "b_b"});
    torch::NoGradGuard no_grad;
    const torch::Tensor stored =
        torch::matmul(m->encode(x.h, x.lengths).transpose(1, 2), m->read_weights(x.q).unsqueeze(2)).squeeze(2);
    EXPECT_LE(rel(stored, m->forward(x.h, x.q, x.lengths).to(torch::kFloat64)), 1e-6);
  }
}

TEST(TorchModules, NoAttentionTakesTheLastValidState) {
  const Batch x = batch(3, 5, 4, 4);
  NoAttention m;
  const auto r = m->forward(x.h, x.q, x.lengths);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_TRUE(torch::equal(r[b], x.h[b][x.lengths[b].item<int64_t>() - 1]));
}

TEST(TorchFunctions, RejectUnsupportedTensors) {
  const auto h = torch::randn({2, 1, 3, 4});
  EXPECT_THROW(softmax_attention(h.to(torch::kFloat64), h, h), c10::Error);
  EXPECT_THROW(softmax_attention(h.squeeze(1), h, h), c10::Error);
  EXPECT_THROW(linear_attention_encode(h, h, {}, torch::tensor({1, 2}, torch::kInt32)), c10::Error);
  // Core argument errors pass through with their message.
  EXPECT_THROW(softmax_attention(h, torch::randn({2, 1, 3, 5}), h), std::exception);
}

}  // namespace
}  // namespace linattn::torch_ext

namespace linattn::torch_ext {
namespace {

TEST(TorchCausal, FunctionMatchesNaiveForEveryDecay) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 2, T = 37, dk = 4, dv = 3;
  const auto q = torch::randn({B, H, T, dk}) * 0.5, k = torch::randn({B, H, T, dk}) * 0.5, v = torch::randn({B, H, T, dv});
  const auto per_step = -torch::rand({B, H, T}) * 0.5, per_channel = -torch::rand({B, H, T, dk}) * 0.5;
  for (int kind = 0; kind < 3; ++kind) {
    const torch::Tensor decay = kind == 0 ? torch::Tensor() : kind == 1 ? per_step : per_channel;
    std::vector<torch::Tensor> ours = {q.clone().set_requires_grad(true), k.clone().set_requires_grad(true),
                                       v.clone().set_requires_grad(true)};
    std::vector<torch::Tensor> ref = {q.to(torch::kFloat64).set_requires_grad(true), k.to(torch::kFloat64).set_requires_grad(true),
                                      v.to(torch::kFloat64).set_requires_grad(true)};
    torch::Tensor d_ours, d_ref;
    if (decay.defined()) {
      d_ours = decay.clone().set_requires_grad(true);
      d_ref = decay.to(torch::kFloat64).set_requires_grad(true);
    }
    const auto o = causal_linear_attention(ours[0], ours[1], ours[2], d_ours, {}, {}, FeatureMap::identity, false, 8);
    const auto full = d_ref.defined() && d_ref.dim() == 3 ? d_ref.unsqueeze(3).expand({B, H, T, dk}) : d_ref;
    const auto r = naive::causal(ref[0], ref[1], ref[2], full);
    EXPECT_LE(rel(o, r), 1e-5) << "forward, decay kind " << kind;
    {  // without a backward to come the forward saves no chunk states: the same outputs
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(torch::equal(causal_linear_attention(q, k, v, decay, {}, {}, FeatureMap::identity, false, 8), o));
    }
    const auto R = torch::randn(o.sizes());
    (o * R).sum().backward();
    (r * R.to(torch::kFloat64)).sum().backward();
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel(ours[i].grad(), ref[i].grad()), 1e-5) << "input " << i << ", decay kind " << kind;
    if (decay.defined()) EXPECT_LE(rel(d_ours.grad(), d_ref.grad()), 1e-5) << "decay gradient, kind " << kind;
  }
}

TEST(TorchCausal, BenchmarkChunkedReferencesMatchTheQuadraticForm) {
  // The naive chunked formulations `make bench-torch` compares against must compute the same thing.
  torch::manual_seed(4);
  const int64_t B = 2, H = 2, T = 32, dk = 5, dv = 3;
  const auto q = torch::randn({B, H, T, dk}, torch::kFloat64), k = torch::randn({B, H, T, dk}, torch::kFloat64);
  const auto v = torch::randn({B, H, T, dv}, torch::kFloat64), g = -torch::rand({B, H, T, dk}, torch::kFloat64) * 0.3;
  EXPECT_LE(rel(naive::causal_chunked(q, k, v, 8), naive::causal(q, k, v, {})), 1e-10);
  EXPECT_LE(rel(naive::gla_chunked(q, k, v, g, 8), naive::causal(q, k, v, g)), 1e-10);
}

TEST(TorchCausal, LayerRunsEveryDecayAndBackpropagates) {
  torch::manual_seed(5);
  for (DecayKind kind : {DecayKind::none, DecayKind::per_head, DecayKind::per_step, DecayKind::per_channel}) {
    CausalLinearAttentionLayer layer(CausalLinearAttentionLayerOptions(16, 4).decay(kind).chunk_size(8));
    const auto x = torch::randn({3, 21, 16});
    const auto y = layer->forward(x, torch::tensor({21, 5, 1}, torch::kInt64));
    ASSERT_EQ(y.sizes(), x.sizes());
    y.pow(2).sum().backward();
    for (const auto& p : layer->parameters()) {
      ASSERT_TRUE(p.grad().defined());
      EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
    }
    // Causality: changing a later position changes no earlier output.
    auto x2 = x.clone();
    x2.index_put_({0, 15}, torch::randn({16}));
    const auto y2 = layer->forward(x2, {});
    const auto y1 = layer->forward(x, {});
    EXPECT_TRUE(torch::allclose(y1.index({0, torch::indexing::Slice(0, 15)}), y2.index({0, torch::indexing::Slice(0, 15)})));
  }
}

}  // namespace
}  // namespace linattn::torch_ext
