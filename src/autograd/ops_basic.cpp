// Products, elementwise arithmetic, reductions, embedding and shape operations on Vars, each with
// its backward beside it.
#include <cstring>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

namespace {

void check(const Var& v, const char* op, const char* what) {
  if (!v.defined()) fail<ValueError>(op, ": ", what, " is undefined");
}

// Sums g over the dimensions that were broadcast to reach g's shape from `target` (NumPy rules).
Tensor<float> reduce_to(const Tensor<float>& g, const Shape& target) {
  if (g.shape() == target) return g;
  Tensor<float> r = g;
  while (r.rank() > target.rank()) r = scholar::sum(r, 0);
  for (int d = 0; d < target.rank(); ++d)
    if (target[d] == 1 && r.shape()[d] != 1) r = scholar::sum(r, d, /*keepdim=*/true);
  return r;
}

// The gradient tensor of v to write into with GEMM: beta is 0 when it was just allocated.
Tensor<float>& gemm_target(const Var& v, float& beta) {
  beta = v.grad().defined() ? 1.0f : 0.0f;
  if (!v.grad().defined()) {
    // Fresh storage; beta = 0 means its contents are never read.
    Tensor<float>& g = v.grad_storage();
    return g;
  }
  return v.grad_storage();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// matmul: C = A B; dA = dC B^T, dB = A^T dC (summed over broadcast batches).

Var matmul(const Var& a, const Var& b) {
  check(a, "matmul", "a");
  check(b, "matmul", "b");
  Tensor<float> c = scholar::matmul(a.value(), b.value());
  return make_result(std::move(c), Op::matmul, {a, b}, [a, b](const Tensor<float>& dc) {
    if (a.requires_grad()) {
      Tensor<float> da = scholar::matmul(dc, b.value().transpose(-1, -2));
      a.accumulate_owned_grad(reduce_to(da, a.shape()).contiguous());
    }
    if (b.requires_grad()) {
      Tensor<float> db = scholar::matmul(a.value().transpose(-1, -2), dc);
      b.accumulate_owned_grad(reduce_to(db, b.shape()).contiguous());
    }
  });
}

// ---------------------------------------------------------------------------------------------
// linear: x [N, in] (leading dims flattened), W [out, in] or [in, out], b [out].
//   y = x W^T + b;  dx = dy W;  dW = dy^T x (or x^T dy);  db = sum over rows of dy.

Var linear(const Var& x, const Var& weight, const Var& bias, WeightLayout layout) {
  check(x, "linear", "input");
  check(weight, "linear", "weight");
  const Tensor<float>& w = weight.value();
  if (w.rank() != 2) fail<ShapeError>("linear: weight must be 2-D, got shape ", w.shape().str());
  const bool in_out = layout == WeightLayout::in_out;
  const int64_t in = in_out ? w.size(0) : w.size(1);
  const int64_t out = in_out ? w.size(1) : w.size(0);
  const Tensor<float>& xv = x.value();
  if (xv.rank() < 1 || xv.size(-1) != in)
    fail<ShapeError>("linear: input of shape ", xv.shape().str(), " does not end in ", in,
                     " (weight ", w.shape().str(),
                     in_out ? ", [in, out] layout)" : ", [out, in] layout)");
  if (bias.defined() && !(bias.shape() == Shape{out}))
    fail<ShapeError>("linear: bias of shape ", bias.shape().str(), ", expected [", out, "]");
  const Tensor<float> x2 = xv.contiguous().reshape({-1, in});
  const Tensor<float> wt = in_out ? w : w.t();
  Tensor<float> y2 = Tensor<float>::empty({x2.size(0), out});
  scholar::matmul_into(y2, x2, wt);
  if (bias.defined()) add_(y2, bias.value());
  Shape yshape = xv.shape();
  yshape[yshape.rank() - 1] = out;
  Tensor<float> y = y2.reshape(yshape);
  return make_result(std::move(y), Op::linear, {x, weight, bias},
                     [x, weight, bias, x2, in_out, in, out](const Tensor<float>& dy) {
                       const Tensor<float> dy2 = dy.contiguous().reshape({-1, out});
                       const Tensor<float>& w = weight.value();
                       if (x.requires_grad()) {
                         Tensor<float> dx2 = Tensor<float>::empty({dy2.size(0), in});
                         scholar::matmul_into(dx2, dy2, in_out ? w.t() : w);
                         x.accumulate_owned_grad(dx2.reshape(x.shape()));
                       }
                       if (weight.requires_grad()) {
                         float beta;
                         Tensor<float>& gw = gemm_target(weight, beta);
                         if (in_out)
                           scholar::matmul_into(gw, x2.t(), dy2, 1.0f, beta);
                         else
                           scholar::matmul_into(gw, dy2.t(), x2, 1.0f, beta);
                       }
                       if (bias.defined() && bias.requires_grad())
                         bias.accumulate_owned_grad(scholar::sum(dy2, 0));
                     });
}

// ---------------------------------------------------------------------------------------------
// Elementwise with broadcasting. Gradients are reduced back to each input's shape.

Var add(const Var& a, const Var& b) {
  check(a, "add", "a");
  check(b, "add", "b");
  return make_result(a.value() + b.value(), Op::add, {a, b}, [a, b](const Tensor<float>& g) {
    if (a.requires_grad()) a.accumulate_grad(reduce_to(g, a.shape()));
    if (b.requires_grad()) b.accumulate_grad(reduce_to(g, b.shape()));
  });
}

Var sub(const Var& a, const Var& b) {
  check(a, "sub", "a");
  check(b, "sub", "b");
  return make_result(a.value() - b.value(), Op::sub, {a, b}, [a, b](const Tensor<float>& g) {
    if (a.requires_grad()) a.accumulate_grad(reduce_to(g, a.shape()));
    if (b.requires_grad()) b.accumulate_owned_grad(reduce_to(-g, b.shape()).contiguous());
  });
}

Var mul(const Var& a, const Var& b) {
  check(a, "mul", "a");
  check(b, "mul", "b");
  return make_result(a.value() * b.value(), Op::mul, {a, b}, [a, b](const Tensor<float>& g) {
    if (a.requires_grad())
      a.accumulate_owned_grad(reduce_to(g * b.value(), a.shape()).contiguous());
    if (b.requires_grad())
      b.accumulate_owned_grad(reduce_to(g * a.value(), b.shape()).contiguous());
  });
}

Var scale(const Var& a, float s) {
  check(a, "scale", "a");
  return make_result(a.value() * s, Op::scale, {a},
                     [a, s](const Tensor<float>& g) { a.accumulate_owned_grad(g * s); });
}

Var sum(const Var& a) {
  check(a, "sum", "a");
  Tensor<float> r = Tensor<float>::scalar(static_cast<float>(sum_all(a.value())));
  return make_result(std::move(r), Op::sum, {a}, [a](const Tensor<float>& g) {
    a.accumulate_grad(g.reshape({}).expand(a.shape()));
  });
}

Var mean(const Var& a) {
  check(a, "mean", "a");
  const int64_t n = a.value().numel();
  if (n == 0) fail<ShapeError>("mean: empty tensor of shape ", a.shape().str());
  Tensor<float> r =
      Tensor<float>::scalar(static_cast<float>(sum_all(a.value()) / static_cast<double>(n)));
  return make_result(std::move(r), Op::mean, {a}, [a, n](const Tensor<float>& g) {
    const Tensor<float> each = Tensor<float>::scalar(g.item() / static_cast<float>(n));
    a.accumulate_grad(each.expand(a.shape()));
  });
}

// ---------------------------------------------------------------------------------------------
// embedding: out[i, :] = table[ids[i], :];  dtable[ids[i], :] += dout[i, :].

Var embedding(const Tensor<int32_t>& ids, const Var& table) {
  check(table, "embedding", "table");
  const Tensor<float>& t = table.value();
  if (t.rank() != 2) fail<ShapeError>("embedding: table must be 2-D [V, C], got ", t.shape().str());
  const int64_t V = t.size(0), C = t.size(1);
  const Tensor<int32_t> idc = ids.contiguous();
  const int64_t n = idc.numel();
  const int32_t* id = idc.data();
  for (int64_t i = 0; i < n; ++i)
    if (id[i] < 0 || id[i] >= V)
      fail<IndexError>("embedding: token id ", id[i], " at position ", i,
                       " is outside the vocabulary [0, ", V, ")");
  Shape oshape = ids.shape();
  oshape.push_back(C);
  Tensor<float> out = Tensor<float>::empty(oshape);
  const Tensor<float> tc = t.contiguous();
  float* po = out.data();
  const float* pt = tc.data();
  parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(po + i * C, pt + int64_t{id[i]} * C, static_cast<size_t>(C) * sizeof(float));
  });
  return make_result(
      std::move(out), Op::embedding, {table}, [table, idc, C](const Tensor<float>& g) {
        Tensor<float>& gt = table.grad_storage();
        const Tensor<float> gc = g.contiguous();
        const int32_t* id = idc.data();
        const int64_t n = idc.numel();
        const kernels::KernelTable& k = kernels::active();
        // Rows may repeat, so threads split the channels, not the rows.
        parallel_for(0, C, 256, [&](int64_t c0, int64_t c1) {
          for (int64_t i = 0; i < n; ++i)
            k.add(gt.data() + int64_t{id[i]} * C + c0, gt.data() + int64_t{id[i]} * C + c0,
                  gc.data() + i * C + c0, static_cast<size_t>(c1 - c0));
        });
      });
}

// ---------------------------------------------------------------------------------------------
// Shapes.

Var reshape(const Var& x, const Shape& shape) {
  check(x, "reshape", "input");
  const Tensor<float>& v = x.value();
  auto view = layout::reshape(v.layout(), shape);  // throws for element-count mismatches
  Tensor<float> y = view ? v.reshape(shape) : v.contiguous().reshape(shape);
  return make_result(std::move(y), Op::reshape, {x}, [x](const Tensor<float>& g) {
    x.accumulate_grad(g.contiguous().reshape(x.shape()));
  });
}

Var transpose(const Var& x, int d0, int d1) {
  check(x, "transpose", "input");
  return make_result(
      x.value().transpose(d0, d1).contiguous(), Op::transpose, {x},
      [x, d0, d1](const Tensor<float>& g) { x.accumulate_grad(g.transpose(d0, d1)); });
}

Var slice(const Var& x, int dim, int64_t start, int64_t stop) {
  check(x, "slice", "input");
  Tensor<float> y = x.value().slice(dim, start, stop).contiguous();
  return make_result(std::move(y), Op::slice, {x}, [x, dim, start, stop](const Tensor<float>& g) {
    add_(x.grad_storage().slice(dim, start, stop), g);
  });
}

Var concat(const std::vector<Var>& parts, int dim) {
  if (parts.empty()) fail<ValueError>("concat: no inputs");
  for (const Var& p : parts) check(p, "concat", "an input");
  const Shape& first = parts[0].shape();
  const int d = layout::normalize_dim(dim, first.rank(), "concat");
  Shape out = first;
  out[d] = 0;
  for (const Var& p : parts) {
    const Shape& s = p.shape();
    bool ok = s.rank() == first.rank();
    for (int i = 0; ok && i < s.rank(); ++i) ok = i == d || s[i] == first[i];
    if (!ok)
      fail<ShapeError>("concat: shapes ", first.str(), " and ", s.str(),
                       " differ outside dimension ", d);
    out[d] += s[d];
  }
  Tensor<float> y = Tensor<float>::empty(out);
  int64_t at = 0;
  std::vector<int64_t> starts;
  for (const Var& p : parts) {
    starts.push_back(at);
    y.slice(d, at, at + p.shape()[d]).copy_from(p.value());
    at += p.shape()[d];
  }
  return make_result(std::move(y), Op::concat, parts, [parts, starts, d](const Tensor<float>& g) {
    for (size_t i = 0; i < parts.size(); ++i)
      if (parts[i].requires_grad())
        parts[i].accumulate_grad(g.slice(d, starts[i], starts[i] + parts[i].shape()[d]));
  });
}

}  // namespace scholar::autograd
