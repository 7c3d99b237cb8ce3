// Multi-head causal self-attention with grouped-query heads and rotary embeddings: forward and
// backward side by side. Per (batch, key/value head) task, for each query head h of the group:
//   S = Q_h K^T / sqrt(D) (+ mask, causal),  P = softmax(S),  O_h = P V            (forward)
//   dP = dO_h V^T,  dV += P^T dO_h,  dS = P (dP - rowsum(dP P)),
//   dQ_h = dS K / sqrt(D),  dK += dS^T Q_h / sqrt(D)                                 (backward)
// Q and K are rotated (RoPE) before the products; their gradients are rotated back afterwards.
// Tasks own whole key/value heads, so the += into dK and dV never race.
#include <cmath>
#include <limits>
#include <vector>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

namespace {

// Causal attention computes its scores and products in chunks of this many query rows, each against
// the keys up to its own last row: about (1 + 1/n) / 2 of the square for n chunks, in products
// still large enough to run near the GEMM's full speed.
constexpr int64_t kCausalChunk = 64;

// Rotates every head vector of x [B, T, heads * D] in place (inverse: by minus the angle).
void rotate(Tensor<float>& x, int64_t heads, int64_t D, const std::vector<float>& cos,
            const std::vector<float>& sin, kernels::RopeStyle style, bool inverse) {
  const int64_t B = x.size(0), T = x.size(1), P = D / 2;
  const kernels::KernelTable& k = kernels::active();
  parallel_for(0, B * T, 16, [&](int64_t b, int64_t e) {
    for (int64_t bt = b; bt < e; ++bt) {
      const int64_t t = bt % T;
      float* row = x.data() + bt * heads * D;
      for (int64_t h = 0; h < heads; ++h)
        k.rope(row + h * D, row + h * D, cos.data() + t * P, sin.data() + t * P,
               static_cast<size_t>(P), style, inverse);
    }
  });
}

}  // namespace

Var attention(const Var& q, const Var& k, const Var& v, const AttentionOptions& opt) {
  if (!q.defined() || !k.defined() || !v.defined())
    fail<ValueError>("attention: q, k and v must be defined");
  const Tensor<float>& qv = q.value();
  if (qv.rank() != 3 || k.rank() != 3 || v.rank() != 3)
    fail<ShapeError>("attention: q, k, v must be [B, T, heads * D], got ", qv.shape().str(), ", ",
                     k.shape().str(), ", ", v.shape().str());
  const int64_t H = opt.n_heads, Hkv = opt.n_kv_heads == 0 ? opt.n_heads : opt.n_kv_heads;
  if (H < 1 || Hkv < 1 || H % Hkv != 0)
    fail<ValueError>("attention: n_heads (", H, ") must be a positive multiple of n_kv_heads (",
                     Hkv, ")");
  const int64_t B = qv.size(0), T = qv.size(1);
  if (qv.size(2) % H != 0)
    fail<ShapeError>("attention: q's last dimension ", qv.size(2), " is not divisible by ", H,
                     " heads");
  const int64_t D = qv.size(2) / H;
  const Shape kv_shape{B, T, Hkv * D};
  if (!(k.shape() == kv_shape) || !(v.shape() == kv_shape))
    fail<ShapeError>("attention: with q ", qv.shape().str(), ", ", H, " heads and ", Hkv,
                     " key/value heads, k and v must be ", kv_shape.str(), ", got ",
                     k.shape().str(), " and ", v.shape().str());
  if (opt.rope.enabled && D % 2 != 0)
    fail<ShapeError>("attention: RoPE needs an even head dimension, got ", D);
  if (opt.rope.enabled && !opt.rope.freq_factors.empty() &&
      static_cast<int64_t>(opt.rope.freq_factors.size()) != D / 2)
    fail<ShapeError>("attention: ", opt.rope.freq_factors.size(),
                     " RoPE frequency factors for a head dimension of ", D, " (need ", D / 2, ")");
  Tensor<float> mask;
  if (opt.mask) {
    const Shape& ms = opt.mask->shape();
    if (!(ms == Shape{T, T}) && !(ms == Shape{B, T, T}))
      fail<ShapeError>("attention: mask must be [T, T] or [B, T, T] = ", Shape{B, T, T}.str(),
                       ", got ", ms.str());
    mask = opt.mask->contiguous();
  }

  // Rotated (or plain) contiguous copies of q and k, kept for backward.
  Tensor<float> qr = qv.clone(), kr = k.value().clone();
  const Tensor<float> vc = v.value().contiguous();
  std::vector<float> cos, sin;
  if (opt.rope.enabled) {
    cos.resize(static_cast<size_t>(T * D / 2));
    sin.resize(cos.size());
    for (int64_t t = 0; t < T; ++t)
      kernels::rope_angles(cos.data() + t * D / 2, sin.data() + t * D / 2,
                           static_cast<double>(t + opt.rope.position_offset),
                           static_cast<size_t>(D / 2), opt.rope.theta,
                           opt.rope.freq_factors.empty() ? nullptr : opt.rope.freq_factors.data());
    rotate(qr, H, D, cos, sin, opt.rope.style, false);
    rotate(kr, Hkv, D, cos, sin, opt.rope.style, false);
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t group = H / Hkv;
  Tensor<float> probs = Tensor<float>::empty({B, H, T, T});
  Tensor<float> out = Tensor<float>::empty({B, T, H * D});
  const bool causal = opt.causal;
  const int64_t chunk = causal ? kCausalChunk : T;
  const kernels::KernelTable& kt = kernels::active();
  thread_pool().run(B * Hkv, [&](int64_t task) {
    const int64_t b = task / Hkv, g = task % Hkv;
    const float* K = kr.data() + b * T * Hkv * D + g * D;
    const float* V = vc.data() + b * T * Hkv * D + g * D;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const float* Q = qr.data() + b * T * H * D + h * D;
      float* P = probs.data() + (b * H + h) * T * T;
      // Causal: rows in chunks of kCausalChunk, each against the keys up to its last row only,
      // so the products skip most of the masked upper triangle (P is zero there).
      for (int64_t i0 = 0; i0 < T; i0 += chunk) {
        const int64_t i1 = std::min(T, i0 + chunk), keys = causal ? i1 : T;
        kernels::gemm(false, true, i1 - i0, keys, D, scale, Q + i0 * H * D, H * D, K, Hkv * D, 0.0f,
                      P + i0 * T, T);
        for (int64_t i = i0; i < i1; ++i) {
          float* row = P + i * T;
          if (mask.defined()) {
            const float* m = mask.data() + (mask.rank() == 3 ? b * T * T : 0) + i * T;
            kt.add(row, row, m, static_cast<size_t>(causal ? i + 1 : T));
          }
          const int64_t n = causal ? i + 1 : T;
          kt.softmax(row, row, static_cast<size_t>(n));
          for (int64_t j = n; j < T; ++j) row[j] = 0.0f;
        }
        kernels::gemm(false, false, i1 - i0, D, keys, 1.0f, P + i0 * T, T, V, Hkv * D, 0.0f,
                      out.data() + b * T * H * D + i0 * H * D + h * D, H * D);
      }
    }
  });

  return make_result(
      std::move(out), Op::attention, {q, k, v},
      [q, k, v, qr, kr, vc, probs, cos, sin, opt, B, T, H, Hkv, D, scale, group, causal,
       chunk](const Tensor<float>& g_out) {
        const Tensor<float> dO = g_out.contiguous();
        Tensor<float> dq = Tensor<float>::empty({B, T, H * D});
        Tensor<float> dk = Tensor<float>::zeros({B, T, Hkv * D});
        Tensor<float> dv = Tensor<float>::zeros({B, T, Hkv * D});
        const kernels::KernelTable& kt = kernels::active();
        thread_pool().run(B * Hkv, [&](int64_t task) {
          const int64_t b = task / Hkv, g = task % Hkv;
          const float* K = kr.data() + b * T * Hkv * D + g * D;
          const float* V = vc.data() + b * T * Hkv * D + g * D;
          float* dK = dk.data() + b * T * Hkv * D + g * D;
          float* dV = dv.data() + b * T * Hkv * D + g * D;
          std::vector<float> dS(static_cast<size_t>(T * T));
          for (int64_t h = g * group; h < (g + 1) * group; ++h) {
            const float* Q = qr.data() + b * T * H * D + h * D;
            const float* P = probs.data() + (b * H + h) * T * T;
            const float* dOh = dO.data() + b * T * H * D + h * D;
            for (int64_t i0 = 0; i0 < T; i0 += chunk) {
              const int64_t i1 = std::min(T, i0 + chunk), keys = causal ? i1 : T, rows = i1 - i0;
              const float* dOc = dOh + i0 * H * D;
              float* dSc = dS.data() + i0 * T;
              kernels::gemm(false, true, rows, keys, D, 1.0f, dOc, H * D, V, Hkv * D, 0.0f, dSc,
                            T);  // dP
              kernels::gemm(true, false, keys, D, rows, 1.0f, P + i0 * T, T, dOc, H * D, 1.0f, dV,
                            Hkv * D);
              for (int64_t i = i0; i < i1; ++i) {
                float* row = dS.data() + i * T;
                const float* prow = P + i * T;
                const float dot = kt.dot(row, prow, static_cast<size_t>(keys));
                for (int64_t j = 0; j < keys; ++j) row[j] = prow[j] * (row[j] - dot);
              }
              kernels::gemm(false, false, rows, D, keys, scale, dSc, T, K, Hkv * D, 0.0f,
                            dq.data() + b * T * H * D + i0 * H * D + h * D, H * D);
              kernels::gemm(true, false, keys, D, rows, scale, dSc, T, Q + i0 * H * D, H * D, 1.0f,
                            dK, Hkv * D);
            }
          }
        });
        if (opt.rope.enabled) {
          rotate(dq, H, D, cos, sin, opt.rope.style, true);
          rotate(dk, Hkv, D, cos, sin, opt.rope.style, true);
        }
        if (q.requires_grad()) q.accumulate_owned_grad(std::move(dq));
        if (k.requires_grad()) k.accumulate_owned_grad(std::move(dk));
        if (v.requires_grad()) v.accumulate_owned_grad(std::move(dv));
      });
}

}  // namespace scholar::autograd
