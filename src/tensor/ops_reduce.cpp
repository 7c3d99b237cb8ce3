// Reductions along one dimension, softmax and log-softmax.
#include <cmath>
#include <limits>

#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar {

namespace {

// x viewed as [outer, n, inner] (contiguous), reducing the middle dimension.
struct Split {
  FloatTensor x;  // contiguous
  int dim;
  int64_t outer = 1, n = 1, inner = 1;
  Shape out_shape;
};

Split split(const FloatTensor& x, int dim, bool keepdim, const char* op) {
  if (!x.defined()) fail<ValueError>(op, ": tensor is undefined");
  if (x.rank() == 0) fail<ShapeError>(op, ": cannot reduce a rank-0 tensor along a dimension");
  Split s;
  s.dim = layout::normalize_dim(dim, x.rank(), op);
  s.x = x.contiguous();
  for (int d = 0; d < x.rank(); ++d) {
    if (d < s.dim) s.outer *= x.shape()[d];
    if (d > s.dim) s.inner *= x.shape()[d];
  }
  s.n = x.shape()[s.dim];
  s.out_shape = x.shape();
  if (keepdim)
    s.out_shape[s.dim] = 1;
  else
    s.out_shape.erase(s.dim);
  return s;
}

enum class Red { sum, max };

FloatTensor reduce(const FloatTensor& x, int dim, bool keepdim, Red red, const char* op) {
  Split s = split(x, dim, keepdim, op);
  if (red == Red::max && s.n == 0)
    fail<ShapeError>(op, ": cannot take the max of an empty dimension (shape ", x.shape().str(),
                     ")");
  FloatTensor out = FloatTensor::empty(s.out_shape);
  const kernels::KernelTable& k = kernels::active();
  const float* px = s.x.data();
  float* po = out.data();
  const int64_t n = s.n, inner = s.inner;
  if (inner == 1) {
    parallel_for(0, s.outer, std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(n, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o)
                     po[o] = red == Red::sum ? k.sum(px + o * n, static_cast<size_t>(n))
                                             : k.max(px + o * n, static_cast<size_t>(n));
                 });
    return out;
  }
  // Accumulate whole rows of `inner` values: out[o, :] op= x[o, j, :]. Work is split over
  // (outer, block of inner) pairs so that a single large row still uses every thread.
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  parallel_for(0, s.outer * blocks,
               std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(n * kBlock, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t t = b; t < e; ++t) {
                   const int64_t o = t / blocks, i0 = (t % blocks) * kBlock;
                   const auto len = static_cast<size_t>(std::min(kBlock, inner - i0));
                   float* dst = po + o * inner + i0;
                   const float* src = px + o * n * inner + i0;
                   if (n == 0) {
                     std::fill_n(dst, len, 0.0f);
                     continue;
                   }
                   std::copy_n(src, len, dst);
                   for (int64_t j = 1; j < n; ++j) {
                     if (red == Red::sum)
                       k.add(dst, dst, src + j * inner, len);
                     else
                       k.maximum(dst, dst, src + j * inner, len);
                   }
                 }
               });
  return out;
}

}  // namespace

FloatTensor sum(const FloatTensor& x, int dim, bool keepdim) {
  return reduce(x, dim, keepdim, Red::sum, "sum");
}

FloatTensor mean(const FloatTensor& x, int dim, bool keepdim) {
  FloatTensor s = reduce(x, dim, keepdim, Red::sum, "mean");
  const int64_t n = x.shape()[layout::normalize_dim(dim, x.rank(), "mean")];
  mul_(s, n == 0 ? std::numeric_limits<float>::quiet_NaN() : 1.0f / static_cast<float>(n));
  return s;
}

FloatTensor max(const FloatTensor& x, int dim, bool keepdim) {
  return reduce(x, dim, keepdim, Red::max, "max");
}

Tensor<int32_t> argmax(const FloatTensor& x, int dim, bool keepdim) {
  Split s = split(x, dim, keepdim, "argmax");
  if (s.n == 0) fail<ShapeError>("argmax: empty dimension (shape ", x.shape().str(), ")");
  if (s.n > INT32_MAX)
    fail<ShapeError>("argmax: dimension of ", s.n, " does not fit int32 indices");
  Tensor<int32_t> out = Tensor<int32_t>::empty(s.out_shape);
  const float* px = s.x.data();
  int32_t* po = out.data();
  const int64_t n = s.n, inner = s.inner;
  parallel_for(
      0, s.outer * inner, std::max<int64_t>(1, (int64_t{1} << 15) / n), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / inner, i = t % inner;
          const float* p = px + o * n * inner + i;
          int64_t best = 0;
          float bv = p[0];
          for (int64_t j = 1; j < n && bv == bv; ++j) {  // a NaN is the maximum, as in PyTorch
            const float v = p[j * inner];
            if (v > bv || v != v) {
              bv = v;
              best = j;
            }
          }
          po[t] = static_cast<int32_t>(best);
        }
      });
  return out;
}

double sum_all(const FloatTensor& x) {
  if (!x.defined()) fail<ValueError>("sum_all: tensor is undefined");
  const FloatTensor c = x.contiguous();
  const kernels::KernelTable& k = kernels::active();
  double total = 0;
  constexpr int64_t kBlock = 4096;
  const int64_t n = c.numel();
  for (int64_t i = 0; i < n; i += kBlock)
    total += k.sum(c.data() + i, static_cast<size_t>(std::min(kBlock, n - i)));
  return total;
}

double mean_all(const FloatTensor& x) {
  if (x.defined() && x.numel() == 0) fail<ShapeError>("mean_all: empty tensor");
  return sum_all(x) / static_cast<double>(x.numel());
}

namespace {

FloatTensor rowwise(const FloatTensor& x, int dim, const char* op,
                    void (*row)(float*, const float*, size_t)) {
  if (!x.defined()) fail<ValueError>(op, ": tensor is undefined");
  if (x.rank() == 0) fail<ShapeError>(op, ": needs at least one dimension");
  const int d = layout::normalize_dim(dim, x.rank(), op);
  if (d != x.rank() - 1) {
    // Move dim last, work on rows, move it back.
    FloatTensor moved = rowwise(x.transpose(d, -1), -1, op, row);
    return moved.transpose(d, -1).contiguous();
  }
  const FloatTensor c = x.contiguous();
  FloatTensor out = FloatTensor::empty(x.shape());
  const int64_t n = x.shape()[d];
  if (n == 0 || c.numel() == 0) return out;
  const int64_t rows = c.numel() / n;
  const float* px = c.data();
  float* po = out.data();
  parallel_for(0, rows, std::max<int64_t>(1, (int64_t{1} << 14) / n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) row(po + r * n, px + r * n, static_cast<size_t>(n));
  });
  return out;
}

}  // namespace

FloatTensor softmax(const FloatTensor& x, int dim) {
  return rowwise(x, dim, "softmax", kernels::active().softmax);
}

FloatTensor log_softmax(const FloatTensor& x, int dim) {
  return rowwise(x, dim, "log_softmax", kernels::active().log_softmax);
}

}  // namespace scholar
