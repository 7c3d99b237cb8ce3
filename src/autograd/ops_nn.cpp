// Activations, normalization, softmax and dropout on Vars: forward and backward side by side, each
// on the SIMD kernels, split over the thread pool by rows or chunks.
#include <cmath>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

namespace {

constexpr int64_t kChunk = int64_t{1} << 14;  // elements per task for elementwise work

void check(const Var& v, const char* op, const char* what) {
  if (!v.defined()) fail<ValueError>(op, ": ", what, " is undefined");
}

// Runs f(begin, end) over [0, n) in chunks on the pool.
template <class F>
void chunks(int64_t n, F&& f) {
  parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) { f(b, static_cast<size_t>(e - b)); });
}

// Rows of the last dimension: (rows, cols) of a tensor seen as [rows, cols].
std::pair<int64_t, int64_t> rows_cols(const Tensor<float>& t) {
  const int64_t cols = t.rank() == 0 ? 1 : t.size(-1);
  return {cols == 0 ? 0 : t.numel() / cols, cols};
}

// Unary activation: y = f(x); dx += dy * f'(x) (x saved).
using Fwd = void (*)(float*, const float*, size_t);
using Bwd = void (*)(float*, const float*, const float*, size_t);

Var unary(const Var& x, Op op, Fwd(kernels::KernelTable::*fwd), Bwd(kernels::KernelTable::*bwd)) {
  check(x, op_name(op).data(), "input");
  const Tensor<float> xc = x.value().contiguous();
  Tensor<float> y = Tensor<float>::empty(xc.shape());
  const kernels::KernelTable& k = kernels::active();
  chunks(xc.numel(), [&](int64_t b, size_t n) { (k.*fwd)(y.data() + b, xc.data() + b, n); });
  return make_result(std::move(y), op, {x}, [x, xc, bwd](const Tensor<float>& g) {
    const Tensor<float> gc = g.contiguous();
    Tensor<float>& dx = x.grad_storage();
    const kernels::KernelTable& k = kernels::active();
    chunks(xc.numel(),
           [&](int64_t b, size_t n) { (k.*bwd)(dx.data() + b, gc.data() + b, xc.data() + b, n); });
  });
}

}  // namespace

// GELU (tanh form) and SiLU.
Var gelu(const Var& x) {
  return unary(x, Op::gelu, &kernels::KernelTable::gelu_forward,
               &kernels::KernelTable::gelu_backward);
}
Var gelu_erf(const Var& x) {
  return unary(x, Op::gelu_erf, &kernels::KernelTable::gelu_erf_forward,
               &kernels::KernelTable::gelu_erf_backward);
}
Var silu(const Var& x) {
  return unary(x, Op::silu, &kernels::KernelTable::silu_forward,
               &kernels::KernelTable::silu_backward);
}

// SwiGLU: y = silu(gate) * up;  dgate += dy up silu'(gate), dup += dy silu(gate).
Var swiglu(const Var& gate, const Var& up) {
  check(gate, "swiglu", "gate");
  check(up, "swiglu", "up");
  if (!(gate.shape() == up.shape()))
    fail<ShapeError>("swiglu: gate ", gate.shape().str(), " and up ", up.shape().str(), " differ");
  const Tensor<float> gc = gate.value().contiguous(), uc = up.value().contiguous();
  Tensor<float> y = Tensor<float>::empty(gc.shape());
  const kernels::KernelTable& k = kernels::active();
  chunks(gc.numel(), [&](int64_t b, size_t n) {
    k.swiglu_forward(y.data() + b, gc.data() + b, uc.data() + b, n);
  });
  return make_result(std::move(y), Op::swiglu, {gate, up},
                     [gate, up, gc, uc](const Tensor<float>& g) {
                       const Tensor<float> dy = g.contiguous();
                       float* dg = gate.requires_grad() ? gate.grad_storage().data() : nullptr;
                       float* du = up.requires_grad() ? up.grad_storage().data() : nullptr;
                       const kernels::KernelTable& k = kernels::active();
                       chunks(gc.numel(), [&](int64_t b, size_t n) {
                         k.swiglu_backward(dg ? dg + b : nullptr, du ? du + b : nullptr,
                                           dy.data() + b, gc.data() + b, uc.data() + b, n);
                       });
                     });
}

// Softmax over the last dimension: y = softmax(x);  dx = y (dy - sum(dy y)).
Var softmax(const Var& x) {
  check(x, "softmax", "input");
  Tensor<float> y = scholar::softmax(x.value(), -1);
  return make_result(y, Op::softmax, {x}, [x, y](const Tensor<float>& g) {
    const Tensor<float> gc = g.contiguous();
    Tensor<float>& dx = x.grad_storage();
    const auto shape = rows_cols(y);
    const int64_t rows = shape.first, cols = shape.second;
    const kernels::KernelTable& k = kernels::active();
    parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(cols, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) {
                     const float* yr = y.data() + r * cols;
                     const float* gr = gc.data() + r * cols;
                     float* dr = dx.data() + r * cols;
                     const float dot = k.dot(gr, yr, static_cast<size_t>(cols));
                     for (int64_t c = 0; c < cols; ++c) dr[c] += yr[c] * (gr[c] - dot);
                   }
                 });
  });
}

// Row normalization: y = x / n with n = max(|x|, eps);  dx = (dy - y (y . dy)) / n when |x| > eps,
// else dy / eps (the clamp is constant there).
Var l2_normalize(const Var& x) {
  check(x, "l2_normalize", "input");
  const Tensor<float> xc = x.value().contiguous();
  const int64_t rows = rows_cols(xc).first, cols = rows_cols(xc).second;
  Tensor<float> y = Tensor<float>::empty(xc.shape());
  std::vector<float> norms(static_cast<size_t>(rows));
  const kernels::KernelTable& k = kernels::active();
  constexpr float kEps = 1e-12f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xc.data() + r * cols;
    const float n = std::sqrt(k.dot(xr, xr, static_cast<size_t>(cols)));
    norms[static_cast<size_t>(r)] = n;
    const float inv = 1.0f / std::max(n, kEps);
    for (int64_t c = 0; c < cols; ++c) y.data()[r * cols + c] = xr[c] * inv;
  }
  return make_result(y, Op::l2_normalize, {x}, [x, y, norms, rows, cols](const Tensor<float>& g) {
    const Tensor<float> gc = g.contiguous();
    Tensor<float>& dx = x.grad_storage();
    const kernels::KernelTable& k = kernels::active();
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = y.data() + r * cols;
      const float* gr = gc.data() + r * cols;
      float* dr = dx.data() + r * cols;
      const float n = norms[static_cast<size_t>(r)];
      if (n <= kEps) {
        for (int64_t c = 0; c < cols; ++c) dr[c] += gr[c] / kEps;
        continue;
      }
      const float dot = k.dot(gr, yr, static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) dr[c] += (gr[c] - yr[c] * dot) / n;
    }
  });
}

// Log-softmax over the last dimension: y = x - logsumexp(x);  dx = dy - softmax(x) sum(dy).
Var log_softmax(const Var& x) {
  check(x, "log_softmax", "input");
  Tensor<float> y = scholar::log_softmax(x.value(), -1);
  return make_result(y, Op::log_softmax, {x}, [x, y](const Tensor<float>& g) {
    const Tensor<float> gc = g.contiguous();
    Tensor<float>& dx = x.grad_storage();
    const auto shape = rows_cols(y);
    const int64_t rows = shape.first, cols = shape.second;
    const kernels::KernelTable& k = kernels::active();
    parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(cols, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) {
                     const float* yr = y.data() + r * cols;
                     const float* gr = gc.data() + r * cols;
                     float* dr = dx.data() + r * cols;
                     const float total = k.sum(gr, static_cast<size_t>(cols));
                     for (int64_t c = 0; c < cols; ++c) dr[c] += gr[c] - std::exp(yr[c]) * total;
                   }
                 });
  });
}

// Inverted dropout: y = x m / (1 - p) with m ~ Bernoulli(1 - p);  dx = dy m / (1 - p).
Var dropout(const Var& x, float p, Generator& gen, bool training) {
  check(x, "dropout", "input");
  if (!(p >= 0.0f && p < 1.0f)) fail<ValueError>("dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0f) return x;
  const Tensor<float> xc = x.value().contiguous();
  const int64_t n = xc.numel();
  // The mask holds the scale (0 or 1 / (1 - p)) so backward is one multiply.
  Tensor<float> mask = Tensor<float>::empty(xc.shape());
  const float keep = 1.0f / (1.0f - p);
  const auto threshold = static_cast<uint32_t>(static_cast<double>(p) * 4294967296.0);
  for (int64_t i = 0; i < n; ++i) mask.data()[i] = gen.next_u32() < threshold ? 0.0f : keep;
  Tensor<float> y = xc * mask;
  return make_result(std::move(y), Op::dropout, {x},
                     [x, mask](const Tensor<float>& g) { x.accumulate_owned_grad(g * mask); });
}

// LayerNorm over the last dimension. Saves each row's mean and rstd.
Var layernorm(const Var& x, const Var& weight, const Var& bias, float eps) {
  check(x, "layernorm", "input");
  check(weight, "layernorm", "weight");
  const Tensor<float> xc = x.value().contiguous();
  const auto shape = rows_cols(xc);
  const int64_t rows = shape.first, C = shape.second;
  if (!(weight.shape() == Shape{C}) || (bias.defined() && !(bias.shape() == Shape{C})))
    fail<ShapeError>("layernorm: input ", xc.shape().str(), " needs weight and bias of shape [", C,
                     "], got ", weight.shape().str(),
                     bias.defined() ? " and " + bias.shape().str() : "");
  if (!(eps > 0.0f)) fail<ValueError>("layernorm: eps must be > 0, got ", eps);
  Tensor<float> y = Tensor<float>::empty(xc.shape());
  Tensor<float> stats = Tensor<float>::empty({rows, 2});  // mean, rstd per row
  const Tensor<float> wc = weight.value().contiguous();
  const Tensor<float> bc = bias.defined() ? bias.value().contiguous() : Tensor<float>();
  const kernels::KernelTable& k = kernels::active();
  parallel_for(
      0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
          k.layernorm_forward(y.data() + r * C, stats.data() + 2 * r, stats.data() + 2 * r + 1,
                              xc.data() + r * C, wc.data(), bc.defined() ? bc.data() : nullptr,
                              static_cast<size_t>(C), eps);
      });
  return make_result(
      std::move(y), Op::layernorm, {x, weight, bias},
      [x, weight, bias, xc, wc, stats, rows = rows, C = C](const Tensor<float>& g) {
        const Tensor<float> gc = g.contiguous();
        float* dx = x.requires_grad() ? x.grad_storage().data() : nullptr;
        const bool dw = weight.requires_grad(), db = bias.defined() && bias.requires_grad();
        const kernels::KernelTable& k = kernels::active();
        // dx rows are independent; dweight and dbias sum over rows, so each task keeps its own
        // partial sums and they are added at the end.
        const int threads = thread_pool().size();
        const int64_t per = (rows + threads - 1) / std::max(threads, 1);
        std::vector<Tensor<float>> pw(static_cast<size_t>(threads)),
            pb(static_cast<size_t>(threads));
        thread_pool().run(threads, [&](int64_t t) {
          const int64_t b = t * per, e = std::min(rows, b + per);
          if (b >= e) return;
          float* w_acc = nullptr;
          float* b_acc = nullptr;
          if (dw) w_acc = (pw[static_cast<size_t>(t)] = Tensor<float>::zeros({C})).data();
          if (db) b_acc = (pb[static_cast<size_t>(t)] = Tensor<float>::zeros({C})).data();
          for (int64_t r = b; r < e; ++r)
            k.layernorm_backward(dx ? dx + r * C : nullptr, w_acc, b_acc, gc.data() + r * C,
                                 xc.data() + r * C, wc.data(), stats.data()[2 * r],
                                 stats.data()[2 * r + 1], static_cast<size_t>(C));
        });
        for (int t = 0; t < threads; ++t) {
          if (dw && pw[static_cast<size_t>(t)].defined())
            weight.accumulate_grad(pw[static_cast<size_t>(t)]);
          if (db && pb[static_cast<size_t>(t)].defined())
            bias.accumulate_grad(pb[static_cast<size_t>(t)]);
        }
      });
}

// RMSNorm over the last dimension. Saves each row's rstd.
Var rmsnorm(const Var& x, const Var& weight, float eps) {
  check(x, "rmsnorm", "input");
  check(weight, "rmsnorm", "weight");
  const Tensor<float> xc = x.value().contiguous();
  const auto shape = rows_cols(xc);
  const int64_t rows = shape.first, C = shape.second;
  if (!(weight.shape() == Shape{C}))
    fail<ShapeError>("rmsnorm: input ", xc.shape().str(), " needs a weight of shape [", C,
                     "], got ", weight.shape().str());
  if (!(eps > 0.0f)) fail<ValueError>("rmsnorm: eps must be > 0, got ", eps);
  Tensor<float> y = Tensor<float>::empty(xc.shape());
  Tensor<float> rstd = Tensor<float>::empty({rows});
  const Tensor<float> wc = weight.value().contiguous();
  const kernels::KernelTable& k = kernels::active();
  parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(C, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t r = b; r < e; ++r)
                   k.rmsnorm_forward(y.data() + r * C, rstd.data() + r, xc.data() + r * C,
                                     wc.data(), static_cast<size_t>(C), eps);
               });
  return make_result(std::move(y), Op::rmsnorm, {x, weight},
                     [x, weight, xc, wc, rstd, rows = rows, C = C](const Tensor<float>& g) {
                       const Tensor<float> gc = g.contiguous();
                       float* dx = x.requires_grad() ? x.grad_storage().data() : nullptr;
                       const bool dw = weight.requires_grad();
                       const kernels::KernelTable& k = kernels::active();
                       const int threads = thread_pool().size();
                       const int64_t per = (rows + threads - 1) / std::max(threads, 1);
                       std::vector<Tensor<float>> pw(static_cast<size_t>(threads));
                       thread_pool().run(threads, [&](int64_t t) {
                         const int64_t b = t * per, e = std::min(rows, b + per);
                         if (b >= e) return;
                         float* w_acc =
                             dw ? (pw[static_cast<size_t>(t)] = Tensor<float>::zeros({C})).data()
                                : nullptr;
                         for (int64_t r = b; r < e; ++r)
                           k.rmsnorm_backward(dx ? dx + r * C : nullptr, w_acc, gc.data() + r * C,
                                              xc.data() + r * C, wc.data(), rstd.data()[r],
                                              static_cast<size_t>(C));
                       });
                       for (int t = 0; t < threads; ++t)
                         if (dw && pw[static_cast<size_t>(t)].defined())
                           weight.accumulate_grad(pw[static_cast<size_t>(t)]);
                     });
}

}  // namespace scholar::autograd
