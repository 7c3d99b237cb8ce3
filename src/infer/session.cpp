// Session: the forward pass over a batch, the KV cache and its sequence operations.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "infer/adapter_checks.hpp"
#include "infer/kv_cache.hpp"
#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/nn/arch.hpp"
#include "scholar/parallel.hpp"

namespace scholar::infer {

namespace {

constexpr int64_t kPanelRows = 64;  // f16/bf16 prefill converts weights in panels of this many rows
constexpr int64_t kGemmAttentionTokens = 16;  // batches this large use matrix-product attention
constexpr int64_t kPackedBf16MinRows = 32;    // rows of a product that use packed bf16 weights
constexpr int64_t kAttnChunk = 128;           // tokens per attention product (bounds the scratch)

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
  bool gpt2;        // learned positions, LayerNorm, fused QKV
  bool bert;        // an encoder: bidirectional attention, post-norm blocks, no head
  bool layer_norm;  // LayerNorm (GPT-2, BERT) rather than RMSNorm (Llama)

  std::unique_ptr<detail::KvCache> cache;
  std::vector<AdapterScale> adapters;  // unmerged low-rank updates, each with its factor
  std::vector<float> lora_tmp;         // [max_batch][largest rank]

  // Which matrix a product is, so that the adapters' updates of it apply.
  struct Target {
    nn::TensorRole role;
    int64_t layer;
  };
  bool embeddings = false;  // SessionOptions::embeddings: return the final norm's output

  // Scratch, sized once for max_batch tokens (out_rows and out for the flagged ones: reserve()).
  std::vector<float> x, xn, q, kx, vx, att, h1, h2, rope_cos, rope_sin, out_rows, out;
  // Converted K and V of one head for attention over a cache not stored in f32: [threads][n_ctx
  // * D] each (empty for an f32 cache, which attention reads in place).
  std::vector<float> kconv, vconv;
  std::vector<float> rope_factors;  // the model's RoPE scaling, empty when unscaled
  std::vector<BlockQ8_0> xq;
  std::vector<float> scores;        // [threads][n_ctx]
  std::vector<float> attn_scratch;  // [threads][kAttnChunk][n_ctx], for matrix-product attention
  std::vector<float> panel;         // [threads][kPanelRows * max cols]
  // Weights packed once for bf16 products on AMX tiles, by weight data (packed_bf16()).
  std::unordered_map<const void*, kernels::PackedBf16B> packed;
  std::vector<int64_t> slot;       // batch token -> cell
  Batch one;                       // decode_one's batch, kept so that its vectors are reused
  int threads = 1;                 // scratch is sized for this many parts
  ThreadPool* opt_pool = nullptr;  // SessionOptions::pool

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
    bert = a.is_encoder();
    layer_norm = gpt2 || bert;
    block = gpt2 ? &Impl::gpt2_block : bert ? &Impl::bert_block : &Impl::llama_block;
    if (bert && !opt.embeddings)
      fail<ValueError>("Session: ", model.source(),
                       " is an encoder (BERT family) with no LM head; open the session with "
                       "SessionOptions::embeddings to get its hidden states");
    // An encoder's attention reads its batch's own K and V rows (keys_of()): its cache keeps only
    // the cells' bookkeeping, and cache_type does not apply.
    cache = std::make_unique<detail::KvCache>(bert ? 0 : L, n_ctx, kvdim, D,
                                              bert ? WeightType::f32 : opt.cache_type);
    embeddings = opt.embeddings;
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
    reserve(max_seq);
    xq.resize(B * static_cast<size_t>((std::max(C, F) + kQuantBlock - 1) / kQuantBlock));
    slot.resize(B);
    opt_pool = opt.pool;
    threads = pool().size();
    scores.resize(static_cast<size_t>(threads * n_ctx));
    if (max_batch >= kGemmAttentionTokens)
      attn_scratch.resize(static_cast<size_t>(threads * kAttnChunk * n_ctx));
    panel.resize(static_cast<size_t>(threads * kPanelRows * std::max(C, F)));
    if (opt.cache_type != WeightType::f32 && !bert) {
      kconv.resize(static_cast<size_t>(threads * n_ctx * D));
      vconv.resize(static_cast<size_t>(threads * n_ctx * D));
    }
  }

  // Output rows for n flagged tokens: grows (once) when a batch flags more tokens than any before,
  // as llama.cpp reserves its outputs; never inside the per-token loop of generation.
  void reserve(int64_t n) {
    const auto rows = static_cast<size_t>(n);
    if (out_rows.size() >= rows * C) return;
    out_rows.resize(rows * C);
    out.resize(rows * (embeddings ? C : V));
  }

  // Head g's keys and values of a layer over cells [0, cells) as f32 rows (`ks`/`vs` apart), read
  // in place or converted into thread p's scratch.
  struct HeadView {
    const float *k, *v;
    int64_t ks, vs;
  };
  // The keys attention runs over: the cache's cells [0, count), or for an encoder the batch's own
  // tokens (each text runs whole in one decode() call, so its keys are exactly its batch rows, in
  // f32 and in place; nothing is stored between calls).
  struct Keys {
    int64_t count;
    const int32_t* seq;  // encoder: the batch's sequence ids; null: the cache's cells
    const detail::KvCache* cache;
    uint64_t seqs(int64_t c) const { return seq ? uint64_t{1} << seq[c] : cache->seqs(c); }
  };
  Keys keys_of(const Batch& b, int64_t T) const {
    return bert ? Keys{T, b.seq.data(), nullptr} : Keys{cache->hi(), nullptr, cache.get()};
  }
  HeadView view(int64_t layer, int64_t g, int64_t cells, int64_t p) {
    if (bert) return {kx.data() + g * D, vx.data() + g * D, kvdim, kvdim};
    return head_view(layer, g, cells, p);
  }

  HeadView head_view(int64_t layer, int64_t g, int64_t cells, int64_t p) {
    HeadView h{};
    float* ksc = kconv.empty() ? nullptr : kconv.data() + p * n_ctx * D;
    float* vsc = vconv.empty() ? nullptr : vconv.data() + p * n_ctx * D;
    h.k = cache->keys(layer, g, cells, ksc, h.ks);
    h.v = cache->values(layer, g, cells, vsc, h.vs);
    return h;
  }

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
              int64_t ldy, Target target) {
    product(W, X, XQ, T, Y, ldy);
    for (const AdapterScale& as : adapters) {
      const LoraUpdate* u = as.adapter->find(target.role, target.layer);
      if (!u) continue;
      // The adapter hook: Y += scale * (X A^T) B^T, two small matrix products.
      const int64_t r = u->rank, n = W.cols;
      kernels::gemm(false, true, T, r, n, 1.0f, X, n, u->a.data(), n, 0.0f, lora_tmp.data(), r);
      kernels::gemm(false, true, T, W.rows, r, u->scale * as.scale, lora_tmp.data(), r, u->b.data(),
                    r, 1.0f, Y, ldy);
    }
  }

  // The product by weight type: Y = X W^T through the weight type's kernel row.
  void product(const Weight& W, const float* X, const BlockQ8_0* XQ, int64_t T, float* Y,
               int64_t ldy) {
    const int64_t rows = W.rows, n = W.cols;
    const size_t rb = row_bytes(W.type, n);
    const auto* base = static_cast<const uint8_t*>(W.data);
    const kernels::WeightKernels& wk = k->weight(W.type);
    if (T > 1 && (W.type == WeightType::f32 || !wk.gemm)) {
      if (const kernels::PackedBf16B* pb = packed_bf16(W, T)) {
        kernels::gemm_bf16_packed(false, T, 1.0f, X, n, *pb, 0.0f, Y, ldy);
        return;
      }
    }
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

  // The weight W (f32, or a type without a product of its own: f16, bf16) packed for bf16 products
  // on AMX tiles, when a product of T rows runs in bf16 there (effective_matmul_precision()) and T
  // is large enough for packing once to pay: packing costs about as much as an AMX product of 512
  // rows, and batches of texts or prompts reuse every weight. Packed at first use and kept for the
  // session (half an f32 weight's size); null otherwise.
  const kernels::PackedBf16B* packed_bf16(const Weight& W, int64_t T) {
    if (T < kPackedBf16MinRows ||
        kernels::effective_matmul_precision() != kernels::MatmulPrecision::bf16 ||
        !kernels::has_amx_bf16())
      return nullptr;
    auto it = packed.find(W.data);
    if (it == packed.end()) {
      const float* src = nullptr;
      std::vector<float> wide;
      if (W.type == WeightType::f32) {
        src = W.f32();
      } else {
        wide.resize(static_cast<size_t>(W.rows * W.cols));
        k->weight(W.type).to_f32(wide.data(), W.data, wide.size());
        src = wide.data();
      }
      it = packed.emplace(W.data, kernels::pack_bf16_b(true, W.cols, W.rows, src, W.cols)).first;
    }
    return &it->second;
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
      if (layer_norm)
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
    const Keys keys = keys_of(b, T);
    const int64_t cells = keys.count;
    on_threads([&](int64_t p, int64_t parts) {
      auto [w0, w1] = split(T * H, parts, p);
      float* s = scores.data() + p * n_ctx;
      int64_t have = -1;  // the kv head whose rows `hv` holds
      HeadView hv{};
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t t = w / H, h = w % H, g = h / group;
        if (g != have) hv = view(layer, g, cells, p), have = g;
        const uint64_t bit = uint64_t{1} << b.seq[static_cast<size_t>(t)];
        const int64_t pos = b.pos[static_cast<size_t>(t)];
        const float* qv = q.data() + t * H * D + h * D;
        // Runs of consecutive visible cells (one run for a single sequence): one dot_rows and one
        // axpy_rows call per run.
        auto for_runs = [&](auto&& f) {
          for (int64_t c = 0; c < cells;) {
            if (!(keys.seqs(c) & bit) || (!bert && cache->pos(c) > pos)) {
              ++c;
              continue;
            }
            int64_t e = c + 1;
            while (e < cells && (keys.seqs(e) & bit) && (bert || cache->pos(e) <= pos)) ++e;
            f(c, e);
            c = e;
          }
        };
        std::fill(s, s + cells, -INFINITY);
        bool any = false;
        for_runs([&](int64_t c, int64_t e) {
          any = true;
          k->dot_rows(s + c, hv.k + c * hv.ks, static_cast<size_t>(hv.ks), qv,
                      static_cast<size_t>(e - c), static_cast<size_t>(D), scale);
        });
        float* o = att.data() + t * H * D + h * D;
        std::fill(o, o + D, 0.0f);
        if (!any) continue;                            // the token sees no cell
        k->softmax(s, s, static_cast<size_t>(cells));  // invisible cells get weight 0
        for_runs([&](int64_t c, int64_t e) {
          k->axpy_rows(o, s + c, hv.v + c * hv.vs, static_cast<size_t>(hv.vs),
                       static_cast<size_t>(e - c), static_cast<size_t>(D));
        });
      }
    });
  }
  // The same for a large batch (prefill), one head per task, as matrix products over a chunk of
  // kAttnChunk tokens: S = Q K^T over all cells in use, masked by sequence and position, softmax,
  // O = P V. The mask makes it exact for any mix of sequences.
  void attention_gemm(int64_t layer, const Batch& b, int64_t T) {
    const int64_t group = H / KVH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const Keys keys = keys_of(b, T);
    const int64_t cells = keys.count;
    const int64_t chunks = (T + kAttnChunk - 1) / kAttnChunk;
    on_threads([&](int64_t p, int64_t parts) {
      auto [w0, w1] = split(chunks * H, parts, p);
      float* S = attn_scratch.data() + p * kAttnChunk * n_ctx;
      int64_t have = -1;
      HeadView hv{};
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t h = w % H, g = h / group, t0 = (w / H) * kAttnChunk;
        const int64_t tn = std::min(kAttnChunk, T - t0);
        if (g != have) hv = view(layer, g, cells, p), have = g;
        // Only the cells [lo, hi) that hold any of the chunk's sequences take part: a batch of
        // several sequences (a teacher's windows) then costs what each costs alone.
        uint64_t bits = 0;
        for (int64_t i = 0; i < tn; ++i) bits |= uint64_t{1} << b.seq[static_cast<size_t>(t0 + i)];
        int64_t lo = 0, hi = cells;
        while (lo < hi && !(keys.seqs(lo) & bits)) ++lo;
        while (hi > lo && !(keys.seqs(hi - 1) & bits)) --hi;
        const int64_t n = hi - lo;
        // An encoder's chunk of one sequence whose cells all hold it (a batch of whole texts)
        // needs no mask.
        bool masked = !bert || (bits & (bits - 1)) != 0;
        for (int64_t c = lo; c < hi && !masked; ++c) masked = !(keys.seqs(c) & bits);
        // The scale goes into the queries (each head's slice of a chunk is this task's alone):
        // a product with alpha = 1 writes AMX tiles straight to S.
        float* qh = q.data() + t0 * H * D + h * D;
        for (int64_t i = 0; i < tn; ++i)
          k->scale(qh + i * H * D, qh + i * H * D, scale, static_cast<size_t>(D));
        kernels::gemm(false, true, tn, n, D, 1.0f, qh, H * D, hv.k + lo * hv.ks, hv.ks, 0.0f, S, n);
        for (int64_t i = 0; i < tn; ++i) {
          const int64_t t = t0 + i;
          const uint64_t bit = uint64_t{1} << b.seq[static_cast<size_t>(t)];
          const int64_t pos = b.pos[static_cast<size_t>(t)];
          float* row = S + i * n;
          if (masked)
            for (int64_t c = lo; c < hi; ++c)
              if (!(keys.seqs(c) & bit) || (!bert && cache->pos(c) > pos)) row[c - lo] = -INFINITY;
          k->softmax(row, row, static_cast<size_t>(n));
        }
        kernels::gemm(false, false, tn, D, n, 1.0f, S, n, hv.v + lo * hv.vs, hv.vs, 0.0f,
                      att.data() + t0 * H * D + h * D, H * D);
      }
    });
  }

  // --- blocks: one function per family, over the batch in x (the residual stream) ----------------

  // GPT-2: pre-LayerNorm, fused QKV with biases, GELU MLP with biases.
  void gpt2_block(int64_t l, const LayerWeights& lw, const Batch& b, int64_t T) {
    using R = nn::TensorRole;
    norm(xn.data(), x.data(), T, lw.attn_norm, lw.attn_norm_b);
    const BlockQ8_0* xq0 = prepare(xn.data(), T, C, {&lw.wqkv});
    linear(lw.wqkv, xn.data(), xq0, T, h1.data(), 3 * C, {R::attn_qkv, l});
    add_bias(h1.data(), T, 3 * C, lw.bqkv);
    for (int64_t t = 0; t < T; ++t) {
      std::memcpy(q.data() + t * C, h1.data() + t * 3 * C, C * sizeof(float));
      std::memcpy(kx.data() + t * C, h1.data() + t * 3 * C + C, C * sizeof(float));
      std::memcpy(vx.data() + t * C, h1.data() + t * 3 * C + 2 * C, C * sizeof(float));
    }
    self_attention(l, lw, b, T);
    residual(T);
    norm(xn.data(), x.data(), T, lw.ffn_norm, lw.ffn_norm_b);
    const BlockQ8_0* xq2 = prepare(xn.data(), T, C, {&lw.w_up});
    linear(lw.w_up, xn.data(), xq2, T, h1.data(), F, {R::ffn_up, l});
    add_bias(h1.data(), T, F, lw.b_up);
    per_token(T, [&](int64_t t0, int64_t t1) {
      k->gelu_forward(h1.data() + t0 * F, h1.data() + t0 * F, static_cast<size_t>((t1 - t0) * F));
    });
    mlp_out(l, lw, T);
    residual(T);
  }

  // Llama and Qwen2: pre-RMSNorm, separate Q/K/V (biases for Qwen2) with RoPE, SwiGLU MLP.
  void llama_block(int64_t l, const LayerWeights& lw, const Batch& b, int64_t T) {
    using R = nn::TensorRole;
    norm(xn.data(), x.data(), T, lw.attn_norm, lw.attn_norm_b);
    const BlockQ8_0* xq0 = prepare(xn.data(), T, C, {&lw.wq, &lw.wk, &lw.wv});
    linear(lw.wq, xn.data(), xq0, T, q.data(), H * D, {R::attn_q, l});
    linear(lw.wk, xn.data(), xq0, T, kx.data(), kvdim, {R::attn_k, l});
    linear(lw.wv, xn.data(), xq0, T, vx.data(), kvdim, {R::attn_v, l});
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
    self_attention(l, lw, b, T);
    residual(T);
    norm(xn.data(), x.data(), T, lw.ffn_norm, lw.ffn_norm_b);
    const BlockQ8_0* xq2 = prepare(xn.data(), T, C, {&lw.w_gate, &lw.w_up});
    linear(lw.w_gate, xn.data(), xq2, T, h1.data(), F, {R::ffn_gate, l});
    linear(lw.w_up, xn.data(), xq2, T, h2.data(), F, {R::ffn_up, l});
    per_token(T, [&](int64_t t0, int64_t t1) {
      k->swiglu_forward(h1.data() + t0 * F, h1.data() + t0 * F, h2.data() + t0 * F,
                        static_cast<size_t>((t1 - t0) * F));
    });
    mlp_out(l, lw, T);
    residual(T);
  }

  // BERT: post-LayerNorm, separate Q/K/V with biases, attention over the whole sequence, GELU (erf)
  // MLP with biases: x = norm(x + attn(x)), then x = norm(x + mlp(x)).
  void bert_block(int64_t l, const LayerWeights& lw, const Batch& b, int64_t T) {
    using R = nn::TensorRole;
    const BlockQ8_0* xq0 = prepare(x.data(), T, C, {&lw.wq, &lw.wk, &lw.wv});
    linear(lw.wq, x.data(), xq0, T, q.data(), H * D, {R::attn_q, l});
    linear(lw.wk, x.data(), xq0, T, kx.data(), kvdim, {R::attn_k, l});
    linear(lw.wv, x.data(), xq0, T, vx.data(), kvdim, {R::attn_v, l});
    add_bias(q.data(), T, H * D, lw.bq);
    add_bias(kx.data(), T, kvdim, lw.bk);
    add_bias(vx.data(), T, kvdim, lw.bv);
    self_attention(l, lw, b, T, /*bias=*/false);
    residual_norm(T, lw.bo, lw.attn_out_norm, lw.attn_out_norm_b);
    const BlockQ8_0* xq2 = prepare(x.data(), T, C, {&lw.w_up});
    linear(lw.w_up, x.data(), xq2, T, h1.data(), F, {R::ffn_up, l});
    // Bias and GELU token by token, so that the GELU reads the row the bias just wrote from L1
    // (the whole [T, F] block is far larger than L2).
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        float* h = h1.data() + t * F;
        if (!lw.b_up.empty()) k->add(h, h, lw.b_up.f32(), static_cast<size_t>(F));
        k->gelu_erf_forward(h, h, static_cast<size_t>(F));
      }
    });
    mlp_out(l, lw, T, /*bias=*/false);
    residual_norm(T, lw.b_down, lw.layer_out_norm, lw.layer_out_norm_b);
  }

  // Post-norm residual: x = norm(x + xn + bias), token by token, so that each row is read from
  // memory once for the three steps.
  void residual_norm(int64_t T, const Weight& bias, const Weight& w, const Weight& b) {
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        float* xt = x.data() + t * C;
        float* nt = xn.data() + t * C;
        if (!bias.empty()) k->add(nt, nt, bias.f32(), static_cast<size_t>(C));
        k->add(xt, xt, nt, static_cast<size_t>(C));
        norm_rows(x.data(), x.data(), t, t + 1, w, b);
      }
    });
  }

  // Shared by the blocks: q, kx, vx -> the cache, attention over it, the output projection (xn).
  // Adds the output projection's bias to xn unless `bias` is false (the caller then adds it).
  void self_attention(int64_t l, const LayerWeights& lw, const Batch& b, int64_t T,
                      bool bias = true) {
    if (!bert)  // an encoder reads its batch's rows in place (keys_of())
      per_token(T, [&](int64_t t0, int64_t t1) {  // each token its own cell
        for (int64_t t = t0; t < t1; ++t)
          cache->store(l, slot[t], kx.data() + t * kvdim, vx.data() + t * kvdim);
      });
    attention(l, b, T);
    const BlockQ8_0* xq1 = prepare(att.data(), T, H * D, {&lw.wo});
    linear(lw.wo, att.data(), xq1, T, xn.data(), C, {nn::TensorRole::attn_out, l});
    if (bias) add_bias(xn.data(), T, C, lw.bo);
  }

  // The MLP's down projection of h1 into xn, with its bias unless `bias` is false.
  void mlp_out(int64_t l, const LayerWeights& lw, int64_t T, bool bias = true) {
    const BlockQ8_0* xq3 = prepare(h1.data(), T, F, {&lw.w_down});
    linear(lw.w_down, h1.data(), xq3, T, xn.data(), C, {nn::TensorRole::ffn_down, l});
    if (bias) add_bias(xn.data(), T, C, lw.b_down);
  }

  // The block function of the model's family (a new family adds one above).
  using BlockFn = void (Impl::*)(int64_t, const LayerWeights&, const Batch&, int64_t);
  BlockFn block = nullptr;

  // Checks a batch against the session; changes nothing. Returns how many outputs it asks for.
  int64_t check_batch(const Batch& b) const {
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
    const int64_t free_cells = cache->free_cells(static_cast<int64_t>(T));
    if (free_cells < static_cast<int64_t>(T))
      fail<ValueError>("Session::decode: the context is full: ", n_ctx - free_cells, " of ", n_ctx,
                       " cells in use, ", T, " more needed (remove tokens or use a larger n_ctx)");
    return outs;
  }

  std::span<const float> run(const Batch& b) {
    PoolScope scope(opt_pool);  // kernels called from here use the session's pool
    const int64_t outs = check_batch(b);
    const int64_t T = static_cast<int64_t>(b.size());
    if (T == 0) return {};
    reserve(outs);
    const ModelWeights& w = m->weights();
    // Cells for the new tokens.
    for (int64_t t = 0; t < T; ++t) slot[t] = cache->take(b.seq[t], b.pos[t]);
    // Embeddings (row t of xn is token t's scratch).
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        float* xt = x.data() + t * C;
        w.tok_embd.row_to_f32(b.tokens[t], xt);
        if (gpt2 || bert) {
          float* tmp = xn.data() + t * C;
          w.pos_embd.row_to_f32(b.pos[t], tmp);
          k->add(xt, xt, tmp, static_cast<size_t>(C));
        }
        if (bert) k->add(xt, xt, w.tok_types.f32(), static_cast<size_t>(C));  // token type 0
      }
    });
    if (bert) norm(x.data(), x.data(), T, w.embd_norm, w.embd_norm_b);
    if (!gpt2 && !bert)  // rotary positions (Llama family)
      for (int64_t t = 0; t < T; ++t)
        kernels::rope_angles(rope_cos.data() + t * D / 2, rope_sin.data() + t * D / 2,
                             static_cast<double>(b.pos[t]), static_cast<size_t>(D / 2),
                             m->arch().rope_theta,
                             rope_factors.empty() ? nullptr : rope_factors.data());
    for (int64_t l = 0; l < L; ++l) (this->*block)(l, w.layers[static_cast<size_t>(l)], b, T);
    // Head, for the flagged tokens only.
    int64_t n_out = 0;
    for (int64_t t = 0; t < T; ++t)
      if (b.logits[t]) {
        std::memcpy(xn.data() + n_out * C, x.data() + t * C, C * sizeof(float));
        ++n_out;
      }
    if (n_out == 0) return {};
    if (embeddings && bert) {  // an encoder's last block ends in its own norm
      std::memcpy(out.data(), xn.data(), static_cast<size_t>(n_out * C) * sizeof(float));
      return {out.data(), static_cast<size_t>(n_out * C)};
    }
    if (embeddings) {  // the final norm's output: what embedding models pool
      norm(out.data(), xn.data(), n_out, w.out_norm, w.out_norm_b);
      return {out.data(), static_cast<size_t>(n_out * C)};
    }
    norm(out_rows.data(), xn.data(), n_out, w.out_norm, w.out_norm_b);
    const BlockQ8_0* xq4 = prepare(out_rows.data(), n_out, C, {&w.output});
    linear(w.output, out_rows.data(), xq4, n_out, out.data(), V, {nn::TensorRole::output, -1});
    return {out.data(), static_cast<size_t>(n_out * V)};
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
  int64_t pos = impl_->cache->next_pos(seq);
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
  b.add(id, impl_->cache->next_pos(seq), seq, true);
  return impl_->run(b);
}

void Session::clear() {
  impl_->cache->clear();
}

void Session::remove(int32_t seq, int64_t p0, int64_t p1) {
  if (seq >= 0) impl_->check_seq(seq, "remove");
  impl_->cache->remove(seq < 0 ? ~uint64_t{0} : uint64_t{1} << seq, p0, p1 < 0 ? INT64_MAX : p1);
}

void Session::copy_sequence(int32_t src, int32_t dst, int64_t p0, int64_t p1) {
  impl_->check_seq(src, "copy_sequence");
  impl_->check_seq(dst, "copy_sequence");
  if (src == dst) return;
  impl_->cache->copy(src, dst, p0, p1 < 0 ? INT64_MAX : p1);
}

void Session::keep_only(int32_t seq) {
  impl_->check_seq(seq, "keep_only");
  impl_->cache->keep_only(seq);
}

int64_t Session::next_pos(int32_t seq) const {
  impl_->check_seq(seq, "next_pos");
  return impl_->cache->next_pos(seq);
}

int64_t Session::used_cells() const {
  return impl_->cache->used();
}

size_t Session::cache_bytes() const noexcept {
  return impl_->cache->bytes();
}

void Session::set_adapter(std::shared_ptr<const Adapter> adapter) {
  std::vector<AdapterScale> v;
  if (adapter) v.push_back({std::move(adapter), 1.0f});
  set_adapters(std::move(v));
}

void Session::set_adapters(std::vector<AdapterScale> adapters) {
  int64_t max_rank = 0;
  for (const AdapterScale& as : adapters) {
    if (!as.adapter) fail<ValueError>("Session::set_adapters: an adapter is null");
    if (!std::isfinite(as.scale))
      fail<ValueError>("Session::set_adapters: scale must be finite, got ", as.scale);
    for (const auto& [role, layer] : as.adapter->targets()) {
      const Weight& w = adapter_target(*model_, role, layer, "Session::set_adapters");
      const LoraUpdate& u = *as.adapter->find(role, layer);
      check_update(w, u, nn::gguf_name(model_->arch().family, role, layer),
                   "Session::set_adapters");
      max_rank = std::max(max_rank, u.rank);
    }
  }
  impl_->lora_tmp.assign(static_cast<size_t>(impl_->max_batch * max_rank), 0.0f);
  impl_->adapters = std::move(adapters);
}

// --- state
// ------------------------------------------------------------------------------------------

namespace {
constexpr char kStateMagic[8] = {'S', 'C', 'H', 'K', 'V', '0', '0', '2'};
}  // namespace

std::string Session::save_state() const {
  std::string s(kStateMagic, 8);
  io::append_bytes(s, impl_->V);
  impl_->cache->save(s);
  return s;
}

void Session::load_state(std::string_view bytes) {
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kStateMagic, 8) != 0)
    fail<FormatError>("Session::load_state: not a scholar session state (bad magic)");
  int64_t vocab = 0;
  std::memcpy(&vocab, bytes.data() + 8, 8);
  if (vocab != impl_->V)
    fail<FormatError>("Session::load_state: the state is for a vocabulary of ", vocab,
                      "; this model has ", impl_->V);
  size_t at = 16;
  impl_->cache->load(bytes, at, model_->arch().context_length, impl_->max_seq);
}

void Session::save_state_file(const std::string& path) const {
  io::write_file_atomic(path, save_state());
}

void Session::load_state_file(const std::string& path) {
  load_state(io::read_file(path));
}

}  // namespace scholar::infer
