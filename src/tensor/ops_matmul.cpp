// Matrix products on float tensors: 2-D and batched 3-D, routed to kernels::gemm.
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar {

namespace {

// One operand as GEMM sees it: a base pointer, whether the rows x cols matrix is stored transposed,
// its leading dimension, and the distance between batch entries (0 when broadcast).
struct Operand {
  const float* p = nullptr;
  bool trans = false;
  int64_t ld = 0;
  int64_t batch = 1;
  int64_t batch_stride = 0;
  FloatTensor keep;  // owns a copy when the view could not be used as is
};

// m is [rows, cols] or [batch, rows, cols].
Operand prepare(const FloatTensor& m, int64_t rows, int64_t cols) {
  Operand op;
  const int r = m.rank();
  const int64_t s0 = m.strides()[r - 2], s1 = m.strides()[r - 1];
  op.batch = r == 3 ? m.shape()[0] : 1;
  auto try_view = [&](const FloatTensor& t, int64_t a, int64_t b, int64_t bs) {
    // Row-major with contiguous rows: element (i, j) at i * a + j.
    if ((cols <= 1 || b == 1) && (rows <= 1 || a >= std::max<int64_t>(1, cols))) {
      op.p = t.data();
      op.trans = false;
      op.ld = rows <= 1 ? std::max<int64_t>(1, cols) : a;
      op.batch_stride = bs;
      return true;
    }
    // Column-major (a transposed row-major matrix): element (i, j) at i + j * b.
    if ((rows <= 1 || a == 1) && (cols <= 1 || b >= std::max<int64_t>(1, rows))) {
      op.p = t.data();
      op.trans = true;
      op.ld = cols <= 1 ? std::max<int64_t>(1, rows) : b;
      op.batch_stride = bs;
      return true;
    }
    return false;
  };
  const int64_t bs = r == 3 && op.batch > 1 ? m.strides()[0] : 0;
  if (try_view(m, s0, s1, bs)) return op;
  op.keep = m.contiguous();
  try_view(op.keep, cols, 1, r == 3 && op.batch > 1 ? rows * cols : 0);
  return op;
}

struct Plan {
  Operand a, b;
  int64_t batch = 1, M = 0, N = 0, K = 0;
  Shape out_shape;
};

Plan plan(const FloatTensor& a, const FloatTensor& b, const char* op) {
  if (!a.defined() || !b.defined()) fail<ValueError>(op, ": tensor is undefined");
  if (a.rank() < 2 || a.rank() > 3 || b.rank() < 2 || b.rank() > 3)
    fail<ShapeError>(op, ": expected 2-D or 3-D operands, got shapes ", a.shape().str(), " and ",
                     b.shape().str());
  Plan p;
  p.M = a.size(-2);
  p.K = a.size(-1);
  p.N = b.size(-1);
  if (b.size(-2) != p.K)
    fail<ShapeError>(op, ": shapes ", a.shape().str(), " and ", b.shape().str(),
                     " do not multiply (", p.K, " columns vs ", b.size(-2), " rows)");
  const int64_t ba = a.rank() == 3 ? a.size(0) : 1, bb = b.rank() == 3 ? b.size(0) : 1;
  if (ba != bb && ba != 1 && bb != 1)
    fail<ShapeError>(op, ": batch sizes ", ba, " and ", bb, " of shapes ", a.shape().str(), " and ",
                     b.shape().str(), " cannot be broadcast");
  p.batch = std::max(ba, bb);
  p.a = prepare(a, p.M, p.K);
  p.b = prepare(b, p.K, p.N);
  if (a.rank() == 3 || b.rank() == 3)
    p.out_shape = Shape{p.batch, p.M, p.N};
  else
    p.out_shape = Shape{p.M, p.N};
  return p;
}

void execute(const Plan& p, float* c, int64_t ldc, int64_t c_batch_stride, float alpha,
             float beta) {
  auto one = [&](int64_t i) {
    const float* pa = p.a.p + (p.a.batch > 1 ? i * p.a.batch_stride : 0);
    const float* pb = p.b.p + (p.b.batch > 1 ? i * p.b.batch_stride : 0);
    kernels::gemm(p.a.trans, p.b.trans, p.M, p.N, p.K, alpha, pa, p.a.ld, pb, p.b.ld, beta,
                  c + i * c_batch_stride, ldc);
  };
  if (p.batch == 1) return one(0);
  // Many small products: one per task (GEMM runs serially inside a pool task).
  thread_pool().run(p.batch, one);
}

bool overlaps(const FloatTensor& x, const FloatTensor& y) {
  const auto [xb, xe] = x.layout().extent();
  const auto [yb, ye] = y.layout().extent();
  if (!x.shares_storage_with(y) || xb == xe || yb == ye) return false;
  return xb < ye && yb < xe;
}

}  // namespace

FloatTensor matmul(const FloatTensor& a, const FloatTensor& b) {
  const Plan p = plan(a, b, "matmul");
  FloatTensor out = FloatTensor::empty(p.out_shape);
  if (out.numel() > 0) execute(p, out.data(), std::max<int64_t>(1, p.N), p.M * p.N, 1.0f, 0.0f);
  return out;
}

void matmul_into(const FloatTensor& out, const FloatTensor& a, const FloatTensor& b, float alpha,
                 float beta) {
  const Plan p = plan(a, b, "matmul_into");
  if (!out.defined()) fail<ValueError>("matmul_into: output tensor is undefined");
  if (!(out.shape() == p.out_shape))
    fail<ShapeError>("matmul_into: output has shape ", out.shape().str(), ", the product of ",
                     a.shape().str(), " and ", b.shape().str(), " has shape ", p.out_shape.str());
  if (overlaps(out, a) || overlaps(out, b))
    fail<ValueError>("matmul_into: the output overlaps an input");
  if (out.numel() == 0) return;
  const int r = out.rank();
  const int64_t row_stride = out.strides()[r - 2], col_stride = out.strides()[r - 1];
  const bool rows_ok = (p.N <= 1 || col_stride == 1) && (p.M <= 1 || row_stride >= p.N);
  const bool batch_ok = r == 2 || p.batch == 1 || out.strides()[0] != 0;
  if (rows_ok && batch_ok) {
    const int64_t ldc = p.M <= 1 ? std::max<int64_t>(1, p.N) : row_stride;
    execute(p, out.data(), ldc, r == 3 ? out.strides()[0] : 0, alpha, beta);
    return;
  }
  // The output's rows are not contiguous: compute into a temporary and combine.
  FloatTensor prod = matmul(a, b);
  if (alpha != 1.0f) mul_(prod, alpha);
  if (beta == 0.0f) {
    out.copy_from(prod);
  } else {
    mul_(out, beta);
    add_(out, prod);
  }
}

}  // namespace scholar
