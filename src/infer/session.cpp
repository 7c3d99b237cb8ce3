// Session: the forward pass over a batch, the KV cache and its sequence operations.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/parallel.hpp"

namespace scholar::infer {

namespace {

constexpr int64_t kPanelRows = 64;  // f16/bf16 prefill converts weights in panels of this many rows
constexpr int64_t kGemmAttentionTokens = 16;  // batches this large use matrix-product attention
constexpr int64_t kAttnChunk = 64;            // tokens per attention product (bounds the scratch)

// Splits [0, n) into `parts` near-equal ranges; returns range p.
inline std::pair<int64_t, int64_t> split(int64_t n, int64_t parts, int64_t p) {
  return {n * p / parts, n * (p + 1) / parts};
}

}  // namespace

struct Session::Impl {
  const Model* m;
  const kernels::KernelTable* k;
  int64_t n_ctx, max_batch;
  int max_seq;
  int64_t C, H, KVH, D, F, V, L, kvdim;
  float eps;
  bool gpt2;

  // KV cache: [L][n_ctx][kvdim] each; cell c belongs to the sequences in cell_seq[c] at
  // position cell_pos[c]; cells at or past cell_hi are empty.
  std::vector<float> kc, vc;
  std::vector<int64_t> cell_pos;
  std::vector<uint64_t> cell_seq;
  int64_t cell_hi = 0;

  // Scratch, sized once for max_batch tokens.
  std::vector<float> x, xn, q, kx, vx, att, h1, h2, rope_cos, rope_sin, out_rows, logits;
  std::vector<float> rope_factors;  // the model's RoPE scaling, empty when unscaled
  std::vector<BlockQ8_0> xq;
  std::vector<float> scores;        // [threads][n_ctx]
  std::vector<float> attn_scratch;  // [threads][kAttnChunk][n_ctx], for matrix-product attention
  std::vector<float> panel;         // [threads][kPanelRows * max cols]
  std::vector<int64_t> slot;        // batch token -> cell
  Batch one;                        // decode_one's batch, kept so that its vectors are reused
  int threads = 1;                  // scratch is sized for this many parts
  ThreadPool* opt_pool = nullptr;   // SessionOptions::pool

  // The pool this call runs on: the session's own, or the caller's current one.
  ThreadPool& pool() const { return opt_pool ? *opt_pool : thread_pool(); }

  Impl(const Model& model, const SessionOptions& opt) : m(&model), k(&kernels::active()) {
    const auto& a = model.arch();
    if (opt.n_ctx < 0) fail<ValueError>("Session: n_ctx must be >= 0, got ", opt.n_ctx);
    n_ctx = opt.n_ctx > 0 ? opt.n_ctx : std::min(a.context_length, kDefaultMaxContext);
    if (opt.max_batch < 1) fail<ValueError>("Session: max_batch must be >= 1, got ", opt.max_batch);
    if (opt.max_sequences < 1 || opt.max_sequences > 64)
      fail<ValueError>("Session: max_sequences must be in [1, 64], got ", opt.max_sequences);
    max_batch = std::min(opt.max_batch, n_ctx);
    max_seq = opt.max_sequences;
    C = a.n_embd, H = a.n_heads, KVH = a.kv_heads(), D = a.head_dim(), F = a.mlp_hidden();
    V = a.vocab_size, L = a.n_layers, kvdim = KVH * D;
    eps = a.norm_eps;
    gpt2 = a.family == nn::TransformerConfig::Family::gpt2;
    const double cache_bytes =
        8.0 * static_cast<double>(L) * static_cast<double>(n_ctx) * static_cast<double>(kvdim);
    try {
      if (cache_bytes > 0x1p50) throw std::bad_alloc();  // also keeps the product in range
      const size_t cache = static_cast<size_t>(L * n_ctx * kvdim);
      kc.assign(cache, 0.0f);
      vc.assign(cache, 0.0f);
    } catch (const std::exception&) {  // bad_alloc or length_error
      fail<ValueError>("Session: a KV cache of ", n_ctx, " cells needs ", cache_bytes / (1 << 30),
                       " GiB, which could not be allocated; pass a smaller n_ctx");
    }
    cell_pos.assign(static_cast<size_t>(n_ctx), -1);
    cell_seq.assign(static_cast<size_t>(n_ctx), 0);
    const auto B = static_cast<size_t>(max_batch);
    x.resize(B * C);
    xn.resize(B * C);
    q.resize(B * H * D);
    kx.resize(B * kvdim);
    vx.resize(B * kvdim);
    att.resize(B * H * D);
    const int64_t wide = gpt2 ? std::max(3 * C, F) : F;
    h1.resize(B * wide);
    h2.resize(B * F);
    rope_cos.resize(B * D / 2);
    rope_sin.resize(B * D / 2);
    rope_factors = a.rope_freq_factors();
    out_rows.resize(static_cast<size_t>(max_seq) * C);
    logits.resize(static_cast<size_t>(max_seq) * V);
    xq.resize(B * static_cast<size_t>((std::max(C, F) + kQuantBlock - 1) / kQuantBlock));
    slot.resize(B);
    opt_pool = opt.pool;
    threads = pool().size();
    scores.resize(static_cast<size_t>(threads * n_ctx));
    if (max_batch >= kGemmAttentionTokens)
      attn_scratch.resize(static_cast<size_t>(threads * kAttnChunk * n_ctx));
    panel.resize(static_cast<size_t>(threads * kPanelRows * std::max(C, F)));
  }

  float* kcache(int64_t layer, int64_t cell) { return kc.data() + (layer * n_ctx + cell) * kvdim; }
  float* vcache(int64_t layer, int64_t cell) { return vc.data() + (layer * n_ctx + cell) * kvdim; }

  // Runs fn(part, n_parts) on every thread of the pool (or inline when there is one).
  template <class Fn>
  void on_threads(Fn&& fn) {
    const int n = std::min(threads, pool().size());
    if (n <= 1) return fn(0, 1);
    pool().run(n, [&](int64_t p) { fn(p, n); });
  }

  // Runs f(t0, t1) over token ranges, on the pool when there are enough tokens (prefill) so that
  // the elementwise steps do not serialize a parallel GEMM.
  template <class F>
  void per_token(int64_t T, F&& f) {
    if (T < 8 || threads <= 1) return f(int64_t{0}, T);
    pool().parallel_for(0, T, 4, f);
  }

  // Y[t * ldy + r] = W[r] . X[t] for t < T, r < W.rows. X holds T rows of W.cols floats; XQ the
  // same rows quantized to Q8_0 when the weight's kernels read their input that way (prepare()).
  void linear(const Weight& W, const float* X, const BlockQ8_0* XQ, int64_t T, float* Y,
              int64_t ldy) {
    const int64_t rows = W.rows, n = W.cols;
    const size_t rb = row_bytes(W.type, n);
    const auto* base = static_cast<const uint8_t*>(W.data);
    const kernels::WeightKernels& wk = k->weight(W.type);
    if (T > 1 && W.type == WeightType::f32) {
      kernels::gemm(false, true, T, rows, n, 1.0f, X, n, W.f32(), n, 0.0f, Y, ldy);
      return;
    }
    // Work in row bands (multiples of 16 rows, so of the 8-row interleave); for T == 1 each band
    // is a GEMV.
    const int64_t align = 16;
    const auto un = static_cast<size_t>(n), uT = static_cast<size_t>(T);
    const auto uldy = static_cast<size_t>(ldy);
    on_threads([&](int64_t p, int64_t parts) {
      auto [r0, r1] = split(rows / align, parts, p);
      r0 *= align;
      r1 = p == parts - 1 ? rows : r1 * align;
      if (r0 >= r1) return;
      const auto nr = static_cast<size_t>(r1 - r0);
      const size_t off = static_cast<size_t>(r0) * rb;
      if (T == 1) {
        wk.gemv(Y + r0, base + off, X, XQ, nr, un);
      } else if (W.packed && wk.gemm_packed) {  // decode: the plain GEMV streams faster
        wk.gemm_packed(Y + r0, uldy, static_cast<const uint8_t*>(W.packed) + off, XQ, nr, uT, un);
      } else if (wk.gemm) {
        wk.gemm(Y + r0, uldy, base + off, XQ, nr, uT, un);
      } else {  // no product on the stored layout: convert panels of rows and multiply in f32
        float* pan = panel.data() + p * kPanelRows * std::max(C, F);
        for (int64_t b = r0; b < r1; b += kPanelRows) {
          const int64_t br = std::min(kPanelRows, r1 - b);
          wk.to_f32(pan, base + static_cast<size_t>(b) * rb, static_cast<size_t>(br) * un);
          kernels::gemm(false, true, T, br, n, 1.0f, X, n, pan, n, 0.0f, Y + b, ldy);
        }
      }
    });
  }

  // Quantizes T rows of n floats into xq when any of the weights that read them is quantized.
  const BlockQ8_0* prepare(const float* X, int64_t T, int64_t n,
                           std::initializer_list<const Weight*> ws) {
    bool any = false;
    for (const Weight* w : ws)
      any = any || (w && !w->empty() && k->weight(w->type).input_type == WeightType::q8_0);
    if (!any) return nullptr;
    const int64_t nb = n / kQuantBlock;
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        k->quantize_q8_0(xq.data() + t * nb, X + t * n, static_cast<size_t>(n));
    });
    return xq.data();
  }

  void add_bias(float* Y, int64_t T, int64_t ldy, const Weight& b) {
    if (b.empty()) return;
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        k->add(Y + t * ldy, Y + t * ldy, b.f32(), static_cast<size_t>(b.cols));
    });
  }

  void norm(float* out, const float* in, int64_t T, const Weight& w, const Weight& b) {
    per_token(T, [&](int64_t t0, int64_t t1) { norm_rows(out, in, t0, t1, w, b); });
  }

  void norm_rows(float* out, const float* in, int64_t t0, int64_t t1, const Weight& w,
                 const Weight& b) {
    for (int64_t t = t0; t < t1; ++t) {
      if (gpt2)
        k->layernorm_forward(out + t * C, nullptr, nullptr, in + t * C, w.f32(),
                             b.empty() ? nullptr : b.f32(), static_cast<size_t>(C), eps);
      else
        k->rmsnorm_forward(out + t * C, nullptr, in + t * C, w.f32(), static_cast<size_t>(C), eps);
    }
  }

  // x += xn over T rows (the residual connection).
  void residual(int64_t T) {
    per_token(T, [&](int64_t t0, int64_t t1) {
      k->add(x.data() + t0 * C, x.data() + t0 * C, xn.data() + t0 * C,
             static_cast<size_t>((t1 - t0) * C));
    });
  }

  // Causal attention of the batch's queries over the cache cells of their own sequence.
  void attention(int64_t layer, const Batch& b, int64_t T) {
    if (T >= kGemmAttentionTokens) return attention_gemm(layer, b, T);
    const int64_t group = H / KVH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    on_threads([&](int64_t p, int64_t parts) {
      auto [w0, w1] = split(T * H, parts, p);
      float* s = scores.data() + p * n_ctx;
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t t = w / H, h = w % H, g = h / group;
        const uint64_t bit = uint64_t{1} << b.seq[static_cast<size_t>(t)];
        const int64_t pos = b.pos[static_cast<size_t>(t)];
        const float* qv = q.data() + t * H * D + h * D;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cell_hi; ++c) {
          if (!(cell_seq[c] & bit) || cell_pos[c] > pos) {
            s[c] = -INFINITY;
            continue;
          }
          s[c] = k->dot(qv, kcache(layer, c) + g * D, static_cast<size_t>(D)) * scale;
          mx = std::max(mx, s[c]);
        }
        float* o = att.data() + t * H * D + h * D;
        std::fill(o, o + D, 0.0f);
        float sum = 0;
        for (int64_t c = 0; c < cell_hi; ++c) {
          if (s[c] == -INFINITY) continue;
          const float e = std::exp(s[c] - mx);
          sum += e;
          k->axpy(o, e, vcache(layer, c) + g * D, static_cast<size_t>(D));
        }
        if (sum > 0) k->scale(o, o, 1.0f / sum, static_cast<size_t>(D));
      }
    });
  }
  // The same for a large batch (prefill), one head per task, as matrix products over a chunk of
  // kAttnChunk tokens: S = Q K^T over all cells in use, masked by sequence and position, softmax,
  // O = P V. The mask makes it exact for any mix of sequences.
  void attention_gemm(int64_t layer, const Batch& b, int64_t T) {
    const int64_t group = H / KVH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const int64_t cells = cell_hi;
    const int64_t chunks = (T + kAttnChunk - 1) / kAttnChunk;
    on_threads([&](int64_t p, int64_t parts) {
      auto [w0, w1] = split(chunks * H, parts, p);
      float* S = attn_scratch.data() + p * kAttnChunk * n_ctx;
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t h = w % H, g = h / group, t0 = (w / H) * kAttnChunk;
        const int64_t tn = std::min(kAttnChunk, T - t0);
        kernels::gemm(false, true, tn, cells, D, scale, q.data() + t0 * H * D + h * D, H * D,
                      kcache(layer, 0) + g * D, kvdim, 0.0f, S, cells);
        for (int64_t i = 0; i < tn; ++i) {
          const int64_t t = t0 + i;
          const uint64_t bit = uint64_t{1} << b.seq[static_cast<size_t>(t)];
          const int64_t pos = b.pos[static_cast<size_t>(t)];
          float* row = S + i * cells;
          for (int64_t c = 0; c < cells; ++c)
            if (!(cell_seq[c] & bit) || cell_pos[c] > pos) row[c] = -INFINITY;
          k->softmax(row, row, static_cast<size_t>(cells));
        }
        kernels::gemm(false, false, tn, D, cells, 1.0f, S, cells, vcache(layer, 0) + g * D, kvdim,
                      0.0f, att.data() + t0 * H * D + h * D, H * D);
      }
    });
  }

  void check_batch(const Batch& b) {
    const size_t T = b.tokens.size();
    if (b.pos.size() != T || b.seq.size() != T || b.logits.size() != T)
      fail<ValueError>("Session::decode: batch fields have different lengths (tokens ", T, ", pos ",
                       b.pos.size(), ", seq ", b.seq.size(), ", logits ", b.logits.size(), ")");
    if (static_cast<int64_t>(T) > max_batch)
      fail<ValueError>("Session::decode: batch of ", T, " tokens exceeds max_batch ", max_batch);
    int64_t outs = 0;
    for (size_t i = 0; i < T; ++i) {
      if (b.tokens[i] < 0 || b.tokens[i] >= V)
        fail<IndexError>("Session::decode: token id ", b.tokens[i], " at batch index ", i,
                         " is outside the vocabulary of ", V);
      if (b.seq[i] < 0 || b.seq[i] >= max_seq)
        fail<ValueError>("Session::decode: sequence id ", b.seq[i], " outside [0, ", max_seq, ")");
      if (b.pos[i] < 0 || b.pos[i] >= m->arch().context_length)
        fail<ValueError>("Session::decode: position ", b.pos[i],
                         " is past the model's context length ", m->arch().context_length);
      outs += b.logits[i] ? 1 : 0;
    }
    if (outs > max_seq && static_cast<size_t>(outs) * V > logits.size())
      logits.resize(static_cast<size_t>(outs * V)), out_rows.resize(static_cast<size_t>(outs * C));
    int64_t free_cells = 0;
    for (int64_t c = 0; c < n_ctx && free_cells < static_cast<int64_t>(T); ++c)
      free_cells += cell_seq[c] == 0 ? 1 : 0;
    if (free_cells < static_cast<int64_t>(T))
      fail<ValueError>("Session::decode: the context is full: ", n_ctx - free_cells, " of ", n_ctx,
                       " cells in use, ", T, " more needed (remove tokens or use a larger n_ctx)");
  }

  std::span<const float> run(const Batch& b) {
    PoolScope scope(opt_pool);  // kernels called from here use the session's pool
    check_batch(b);
    const int64_t T = static_cast<int64_t>(b.size());
    if (T == 0) return {};
    const ModelWeights& w = m->weights();
    // Cells for the new tokens.
    for (int64_t t = 0, c = 0; t < T; ++t) {
      while (cell_seq[c] != 0) ++c;
      slot[t] = c;
      cell_seq[c] = uint64_t{1} << b.seq[t];
      cell_pos[c] = b.pos[t];
      cell_hi = std::max(cell_hi, c + 1);
    }
    // Embeddings.
    for (int64_t t = 0; t < T; ++t) {
      float* xt = x.data() + t * C;
      w.tok_embd.row_to_f32(b.tokens[t], xt);
      if (gpt2) {
        float* tmp = xn.data();
        w.pos_embd.row_to_f32(b.pos[t], tmp);
        k->add(xt, xt, tmp, static_cast<size_t>(C));
      }
    }
    if (!gpt2)
      for (int64_t t = 0; t < T; ++t)
        kernels::rope_angles(rope_cos.data() + t * D / 2, rope_sin.data() + t * D / 2,
                             static_cast<double>(b.pos[t]), static_cast<size_t>(D / 2),
                             m->arch().rope_theta,
                             rope_factors.empty() ? nullptr : rope_factors.data());
    for (int64_t l = 0; l < L; ++l) {
      const LayerWeights& lw = w.layers[l];
      norm(xn.data(), x.data(), T, lw.attn_norm, lw.attn_norm_b);
      if (gpt2) {
        const BlockQ8_0* xq0 = prepare(xn.data(), T, C, {&lw.wqkv});
        linear(lw.wqkv, xn.data(), xq0, T, h1.data(), 3 * C);
        add_bias(h1.data(), T, 3 * C, lw.bqkv);
        for (int64_t t = 0; t < T; ++t) {
          std::memcpy(q.data() + t * C, h1.data() + t * 3 * C, C * sizeof(float));
          std::memcpy(kx.data() + t * C, h1.data() + t * 3 * C + C, C * sizeof(float));
          std::memcpy(vx.data() + t * C, h1.data() + t * 3 * C + 2 * C, C * sizeof(float));
        }
      } else {
        const BlockQ8_0* xq0 = prepare(xn.data(), T, C, {&lw.wq, &lw.wk, &lw.wv});
        linear(lw.wq, xn.data(), xq0, T, q.data(), H * D);
        linear(lw.wk, xn.data(), xq0, T, kx.data(), kvdim);
        linear(lw.wv, xn.data(), xq0, T, vx.data(), kvdim);
        add_bias(q.data(), T, H * D, lw.bq);
        add_bias(kx.data(), T, kvdim, lw.bk);
        add_bias(vx.data(), T, kvdim, lw.bv);
        const auto style = m->config().rope_style;
        per_token(T, [&](int64_t ta, int64_t tb) {
          for (int64_t t = ta; t < tb; ++t) {
            const float* cs = rope_cos.data() + t * D / 2;
            const float* sn = rope_sin.data() + t * D / 2;
            for (int64_t h = 0; h < H; ++h) {
              float* v = q.data() + t * H * D + h * D;
              k->rope(v, v, cs, sn, static_cast<size_t>(D / 2), style, false);
            }
            for (int64_t h = 0; h < KVH; ++h) {
              float* v = kx.data() + t * kvdim + h * D;
              k->rope(v, v, cs, sn, static_cast<size_t>(D / 2), style, false);
            }
          }
        });
      }
      for (int64_t t = 0; t < T; ++t) {
        std::memcpy(kcache(l, slot[t]), kx.data() + t * kvdim, kvdim * sizeof(float));
        std::memcpy(vcache(l, slot[t]), vx.data() + t * kvdim, kvdim * sizeof(float));
      }
      attention(l, b, T);
      const BlockQ8_0* xq1 = prepare(att.data(), T, H * D, {&lw.wo});
      linear(lw.wo, att.data(), xq1, T, xn.data(), C);
      add_bias(xn.data(), T, C, lw.bo);
      residual(T);

      norm(xn.data(), x.data(), T, lw.ffn_norm, lw.ffn_norm_b);
      if (gpt2) {
        const BlockQ8_0* xq2 = prepare(xn.data(), T, C, {&lw.w_up});
        linear(lw.w_up, xn.data(), xq2, T, h1.data(), F);
        add_bias(h1.data(), T, F, lw.b_up);
        per_token(T, [&](int64_t t0, int64_t t1) {
          k->gelu_forward(h1.data() + t0 * F, h1.data() + t0 * F,
                          static_cast<size_t>((t1 - t0) * F));
        });
      } else {
        const BlockQ8_0* xq2 = prepare(xn.data(), T, C, {&lw.w_gate, &lw.w_up});
        linear(lw.w_gate, xn.data(), xq2, T, h1.data(), F);
        linear(lw.w_up, xn.data(), xq2, T, h2.data(), F);
        per_token(T, [&](int64_t t0, int64_t t1) {
          k->swiglu_forward(h1.data() + t0 * F, h1.data() + t0 * F, h2.data() + t0 * F,
                            static_cast<size_t>((t1 - t0) * F));
        });
      }
      const BlockQ8_0* xq3 = prepare(h1.data(), T, F, {&lw.w_down});
      linear(lw.w_down, h1.data(), xq3, T, xn.data(), C);
      add_bias(xn.data(), T, C, lw.b_down);
      residual(T);
    }
    // Head, for the flagged tokens only.
    int64_t n_out = 0;
    for (int64_t t = 0; t < T; ++t)
      if (b.logits[t]) {
        std::memcpy(xn.data() + n_out * C, x.data() + t * C, C * sizeof(float));
        ++n_out;
      }
    if (n_out == 0) return {};
    norm(out_rows.data(), xn.data(), n_out, w.out_norm, w.out_norm_b);
    const BlockQ8_0* xq4 = prepare(out_rows.data(), n_out, C, {&w.output});
    linear(w.output, out_rows.data(), xq4, n_out, logits.data(), V);
    return {logits.data(), static_cast<size_t>(n_out * V)};
  }

  int64_t next_pos(int32_t seq) const {
    const uint64_t bit = uint64_t{1} << seq;
    int64_t p = -1;
    for (int64_t c = 0; c < cell_hi; ++c)
      if (cell_seq[c] & bit) p = std::max(p, cell_pos[c]);
    return p + 1;
  }

  void shrink() {
    while (cell_hi > 0 && cell_seq[cell_hi - 1] == 0) --cell_hi;
  }

  void check_seq(int32_t seq, const char* op) const {
    if (seq < 0 || seq >= max_seq)
      fail<ValueError>("Session::", op, ": sequence id ", seq, " outside [0, ", max_seq, ")");
  }
};

Session::Session(std::shared_ptr<const Model> model, SessionOptions opt)
    : model_(std::move(model)) {
  if (!model_) fail<ValueError>("Session: null model");
  impl_ = std::make_unique<Impl>(*model_, opt);
}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

int64_t Session::n_ctx() const noexcept {
  return impl_->n_ctx;
}

int Session::max_sequences() const noexcept {
  return impl_->max_seq;
}

std::span<const float> Session::decode(const Batch& batch) {
  return impl_->run(batch);
}

std::span<const float> Session::prefill(std::span<const int32_t> ids, int32_t seq) {
  impl_->check_seq(seq, "prefill");
  if (ids.empty()) fail<ValueError>("Session::prefill: no tokens");
  int64_t pos = impl_->next_pos(seq);
  if (pos + static_cast<int64_t>(ids.size()) > model_->arch().context_length)
    fail<ValueError>("Session::prefill: ", ids.size(), " tokens after ", pos,
                     " would pass the model's context length ", model_->arch().context_length);
  const int64_t free_cells = impl_->n_ctx - used_cells();
  if (static_cast<int64_t>(ids.size()) > free_cells)
    fail<ValueError>("Session::prefill: the context is full: ", ids.size(), " tokens need cells, ",
                     free_cells, " of ", impl_->n_ctx,
                     " are free (remove tokens or use a larger n_ctx)");
  std::span<const float> out;
  Batch b;
  for (size_t i = 0; i < ids.size();) {
    b.clear();
    const size_t n = std::min(ids.size() - i, static_cast<size_t>(impl_->max_batch));
    for (size_t j = 0; j < n; ++j) b.add(ids[i + j], pos++, seq, i + j == ids.size() - 1);
    out = impl_->run(b);
    i += n;
  }
  return out;
}

std::span<const float> Session::decode_one(int32_t id, int32_t seq) {
  impl_->check_seq(seq, "decode_one");
  Batch& b = impl_->one;  // reused: no allocation per token
  b.clear();
  b.add(id, impl_->next_pos(seq), seq, true);
  return impl_->run(b);
}

void Session::clear() {
  std::fill(impl_->cell_seq.begin(), impl_->cell_seq.end(), 0);
  std::fill(impl_->cell_pos.begin(), impl_->cell_pos.end(), -1);
  impl_->cell_hi = 0;
}

void Session::remove(int32_t seq, int64_t p0, int64_t p1) {
  if (seq >= 0) impl_->check_seq(seq, "remove");
  if (p1 < 0) p1 = INT64_MAX;
  const uint64_t mask = seq < 0 ? ~uint64_t{0} : uint64_t{1} << seq;
  for (int64_t c = 0; c < impl_->cell_hi; ++c)
    if (impl_->cell_pos[c] >= p0 && impl_->cell_pos[c] < p1) {
      impl_->cell_seq[c] &= ~mask;
      if (impl_->cell_seq[c] == 0) impl_->cell_pos[c] = -1;
    }
  impl_->shrink();
}

void Session::copy_sequence(int32_t src, int32_t dst, int64_t p0, int64_t p1) {
  impl_->check_seq(src, "copy_sequence");
  impl_->check_seq(dst, "copy_sequence");
  if (src == dst) return;
  remove(dst, p0, p1);
  if (p1 < 0) p1 = INT64_MAX;
  const uint64_t s = uint64_t{1} << src, d = uint64_t{1} << dst;
  for (int64_t c = 0; c < impl_->cell_hi; ++c)
    if ((impl_->cell_seq[c] & s) && impl_->cell_pos[c] >= p0 && impl_->cell_pos[c] < p1)
      impl_->cell_seq[c] |= d;
}

void Session::keep_only(int32_t seq) {
  impl_->check_seq(seq, "keep_only");
  const uint64_t bit = uint64_t{1} << seq;
  for (int64_t c = 0; c < impl_->cell_hi; ++c) {
    impl_->cell_seq[c] &= bit;
    if (impl_->cell_seq[c] == 0) impl_->cell_pos[c] = -1;
  }
  impl_->shrink();
}

int64_t Session::next_pos(int32_t seq) const {
  impl_->check_seq(seq, "next_pos");
  return impl_->next_pos(seq);
}

int64_t Session::used_cells() const {
  int64_t n = 0;
  for (int64_t c = 0; c < impl_->cell_hi; ++c) n += impl_->cell_seq[c] != 0 ? 1 : 0;
  return n;
}

// --- state
// ------------------------------------------------------------------------------------------

namespace {
constexpr char kStateMagic[8] = {'S', 'C', 'H', 'K', 'V', '0', '0', '1'};
}  // namespace

std::string Session::save_state() const {
  const Impl& m = *impl_;
  std::string s(kStateMagic, 8);
  for (int64_t v : {m.L, m.kvdim, m.V, m.cell_hi}) io::append_bytes(s, v);
  for (int64_t c = 0; c < m.cell_hi; ++c) {
    io::append_bytes(s, m.cell_pos[c]);
    io::append_bytes(s, m.cell_seq[c]);
  }
  const size_t row = static_cast<size_t>(m.kvdim) * sizeof(float);
  for (int64_t l = 0; l < m.L; ++l)
    for (int64_t c = 0; c < m.cell_hi; ++c) {
      s.append(reinterpret_cast<const char*>(impl_->kcache(l, c)), row);
      s.append(reinterpret_cast<const char*>(impl_->vcache(l, c)), row);
    }
  return s;
}

void Session::load_state(std::string_view bytes) {
  Impl& m = *impl_;
  size_t at = 0;
  auto get = [&](void* out, size_t n) {
    if (n > bytes.size() - at)
      fail<FormatError>("Session::load_state: truncated state (", bytes.size(), " bytes)");
    std::memcpy(out, bytes.data() + at, n);
    at += n;
  };
  char magic[8];
  get(magic, 8);
  if (std::memcmp(magic, kStateMagic, 8) != 0)
    fail<FormatError>("Session::load_state: not a scholar session state (bad magic)");
  int64_t hdr[4];
  get(hdr, sizeof hdr);
  if (hdr[0] != m.L || hdr[1] != m.kvdim || hdr[2] != m.V)
    fail<FormatError>("Session::load_state: the state is for another model (", hdr[0], " layers, ",
                      hdr[1], " KV width, vocabulary ", hdr[2], "; this one: ", m.L, ", ", m.kvdim,
                      ", ", m.V, ")");
  const int64_t hi = hdr[3];
  if (hi < 0 || hi > m.n_ctx)
    fail<FormatError>("Session::load_state: ", hi, " cells do not fit this session's ", m.n_ctx);
  const size_t row = static_cast<size_t>(m.kvdim) * sizeof(float);
  const size_t need = static_cast<size_t>(hi) * (16 + 2 * row * static_cast<size_t>(m.L));
  if (bytes.size() - at != need)
    fail<FormatError>("Session::load_state: expected ", need, " bytes of cells, found ",
                      bytes.size() - at);
  std::vector<int64_t> pos(static_cast<size_t>(hi));
  std::vector<uint64_t> seq(static_cast<size_t>(hi));
  for (int64_t c = 0; c < hi; ++c) {
    get(&pos[c], 8);
    get(&seq[c], 8);
    if (seq[c] != 0 && (pos[c] < 0 || pos[c] >= model_->arch().context_length ||
                        (m.max_seq < 64 && (seq[c] >> m.max_seq) != 0)))
      fail<FormatError>("Session::load_state: cell ", c, " is invalid for this session");
  }
  clear();
  for (int64_t c = 0; c < hi; ++c) {
    m.cell_pos[c] = seq[c] ? pos[c] : -1;
    m.cell_seq[c] = seq[c];
  }
  for (int64_t l = 0; l < m.L; ++l)
    for (int64_t c = 0; c < hi; ++c) {
      get(m.kcache(l, c), row);
      get(m.vcache(l, c), row);
    }
  m.cell_hi = hi;
  m.shrink();
}

void Session::save_state_file(const std::string& path) const {
  io::write_file_atomic(path, save_state());
}

void Session::load_state_file(const std::string& path) {
  load_state(io::read_file(path));
}

}  // namespace scholar::infer
