// Linear layers over frozen compact weights and the fused LoRA branch.
//
// Forward:  y = x W^T + b + s * xd A^T B^T, with xd = dropout(x) (x itself without dropout).
// Backward: g = s * dy B ([N, r], the one product the branch's gradients share),
//           dx = dy W + (g A) * mask, dA = g^T xd, dB = s * dy^T (xd A^T), db = sum dy.
// A frozen compact W is converted to f32 a panel of rows at a time for both products.
#include <algorithm>
#include <cstring>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

namespace {

// Rows per f32 panel: about 1 MB of floats, at least 64 rows so each GEMM stays efficient.
int64_t panel_rows(int64_t cols) {
  return std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(cols, 1), 64, 1024);
}

// Calls f(r0, rows, panel) for consecutive panels of W's rows converted to f32.
template <class F>
void for_each_panel(const QuantizedWeight& w, F&& f) {
  const auto& wk = kernels::active().weight(w.type);
  const int64_t P = std::min(panel_rows(w.cols), w.rows);
  const size_t rb = row_bytes(w.type, w.cols);
  std::vector<float> pan(static_cast<size_t>(P * w.cols));
  for (int64_t r0 = 0; r0 < w.rows; r0 += P) {
    const int64_t pr = std::min(P, w.rows - r0);
    wk.to_f32(pan.data(), w.bytes.data() + static_cast<size_t>(r0) * rb,
              static_cast<size_t>(pr * w.cols));
    f(r0, pr, pan.data());
  }
}

// Y[N, rows] = X[N, cols] W^T.
void compact_forward(const QuantizedWeight& w, const float* X, int64_t N, float* Y) {
  for_each_panel(w, [&](int64_t r0, int64_t pr, const float* pan) {
    kernels::gemm(false, true, N, pr, w.cols, 1.0f, X, w.cols, pan, w.cols, 0.0f, Y + r0, w.rows);
  });
}

// dX[N, cols] = dY[N, rows] W (+ beta * dX).
void compact_backward(const QuantizedWeight& w, const float* dY, int64_t N, float* dX, float beta) {
  for_each_panel(w, [&](int64_t r0, int64_t pr, const float* pan) {
    kernels::gemm(false, false, N, w.cols, pr, 1.0f, dY + r0, w.rows, pan, w.cols,
                  r0 == 0 ? beta : 1.0f, dX, w.cols);
  });
}

// The base of a linear layer: an f32 Var (either layout) or a frozen compact matrix.
struct Base {
  Var weight;
  std::shared_ptr<const QuantizedWeight> compact;
  WeightLayout layout = WeightLayout::out_in;

  int64_t in() const {
    if (compact) return compact->cols;
    return layout == WeightLayout::in_out ? weight.size(0) : weight.size(1);
  }
  int64_t out() const {
    if (compact) return compact->rows;
    return layout == WeightLayout::in_out ? weight.size(1) : weight.size(0);
  }
  std::string describe() const {
    std::string s;
    if (compact) {
      s.append("[").append(std::to_string(compact->rows)).append(", ");
      s.append(std::to_string(compact->cols)).append("] ");
      s.append(weight_type_name(compact->type));
      return s;
    }
    s.append(weight.shape().str());
    s.append(layout == WeightLayout::in_out ? ", [in, out] layout" : ", [out, in] layout");
    return s;
  }
};

void check_defined(const Var& v, const char* op, const char* what) {
  if (!v.defined()) fail<ValueError>(op, ": ", what, " is undefined");
}

Var linear_impl(const char* op, const Var& x, const Base& base, const Var& bias,
                const LoraBranch* lora) {
  check_defined(x, op, "input");
  if (!base.compact) {
    check_defined(base.weight, op, "weight");
    if (base.weight.rank() != 2)
      fail<ShapeError>(op, ": weight must be 2-D, got shape ", base.weight.shape().str());
  }
  const int64_t in = base.in(), out = base.out();
  const Tensor<float>& xv = x.value();
  if (xv.rank() < 1 || xv.size(-1) != in)
    fail<ShapeError>(op, ": input of shape ", xv.shape().str(), " does not end in ", in,
                     " (weight ", base.describe(), ")");
  if (bias.defined() && !(bias.shape() == Shape{out}))
    fail<ShapeError>(op, ": bias of shape ", bias.shape().str(), ", expected [", out, "]");
  int64_t r = 0;
  if (lora) {
    check_defined(lora->a, op, "lora A");
    check_defined(lora->b, op, "lora B");
    r = lora->a.rank() == 2 ? lora->a.size(0) : -1;
    if (r < 1 || !(lora->a.shape() == Shape{r, in}) || !(lora->b.shape() == Shape{out, r}))
      fail<ShapeError>(op, ": adapter A ", lora->a.shape().str(), " and B ", lora->b.shape().str(),
                       " do not fit a weight with in = ", in, " and out = ", out,
                       " (expected A [r, ", in, "] and B [", out, ", r])");
    if (!(lora->dropout >= 0.0f && lora->dropout < 1.0f))
      fail<ValueError>(op, ": dropout must be in [0, 1), got ", lora->dropout);
    if (lora->dropout > 0.0f && lora->training && !lora->gen)
      fail<ValueError>(op, ": dropout ", lora->dropout, " in training needs a generator");
  }

  const Tensor<float> x2 = xv.contiguous().reshape({-1, in});
  const int64_t N = x2.size(0);
  Tensor<float> y2 = Tensor<float>::empty({N, out});
  if (base.compact) {
    compact_forward(*base.compact, x2.data(), N, y2.data());
  } else {
    const Tensor<float>& w = base.weight.value();
    scholar::matmul_into(y2, x2, base.layout == WeightLayout::in_out ? w : w.t());
  }
  if (bias.defined()) add_(y2, bias.value());

  // The branch: xd (x with dropout, or x itself), h = xd A^T [N, r], y += s h B^T.
  Tensor<float> xd, mask, h;
  float s = 0.0f;
  if (lora) {
    s = lora->scale;
    xd = x2;
    if (lora->dropout > 0.0f && lora->training) {
      const float keep = 1.0f / (1.0f - lora->dropout);
      const auto threshold =
          static_cast<uint32_t>(static_cast<double>(lora->dropout) * 4294967296.0);
      mask = Tensor<float>::empty({N, in});
      for (int64_t i = 0; i < N * in; ++i)
        mask.data()[i] = lora->gen->next_u32() < threshold ? 0.0f : keep;
      xd = x2 * mask;
    }
    h = Tensor<float>::empty({N, r});
    const Tensor<float> av = lora->a.value().contiguous(), bv = lora->b.value().contiguous();
    kernels::gemm(false, true, N, r, in, 1.0f, xd.data(), in, av.data(), in, 0.0f, h.data(), r);
    kernels::gemm(false, true, N, out, r, s, h.data(), r, bv.data(), r, 1.0f, y2.data(), out);
  }

  Shape yshape = xv.shape();
  yshape[yshape.rank() - 1] = out;
  Tensor<float> y = y2.reshape(yshape);
  std::vector<Var> inputs{x, base.weight, bias};
  Var a, b;
  if (lora) {
    a = lora->a;
    b = lora->b;
    inputs.push_back(a);
    inputs.push_back(b);
  }
  return make_result(
      std::move(y), lora ? Op::lora_linear : Op::linear, std::move(inputs),
      [x, base, bias, a, b, x2, xd, mask, h, s, in, out, r](const Tensor<float>& dy) {
        const Tensor<float> dy2 = dy.contiguous().reshape({-1, out});
        const int64_t N = dy2.size(0);
        const bool branch = a.defined();
        // g = s * dy B, needed by dx and dA.
        Tensor<float> g;
        const bool need_g = branch && (x.requires_grad() || a.requires_grad());
        if (need_g) {
          const Tensor<float> bv = b.value().contiguous();
          g = Tensor<float>::empty({N, r});
          kernels::gemm(false, false, N, r, out, s, dy2.data(), out, bv.data(), r, 0.0f, g.data(),
                        r);
        }
        if (x.requires_grad()) {
          Tensor<float> dx2 = Tensor<float>::empty({N, in});
          if (base.compact) {
            compact_backward(*base.compact, dy2.data(), N, dx2.data(), 0.0f);
          } else {
            const Tensor<float>& w = base.weight.value();
            scholar::matmul_into(dx2, dy2, base.layout == WeightLayout::in_out ? w.t() : w);
          }
          if (branch) {
            const Tensor<float> av = a.value().contiguous();
            if (mask.defined()) {  // the branch's share passes through the dropout mask
              Tensor<float> dxd = Tensor<float>::empty({N, in});
              kernels::gemm(false, false, N, in, r, 1.0f, g.data(), r, av.data(), in, 0.0f,
                            dxd.data(), in);
              dxd = dxd * mask;
              add_(dx2, dxd);
            } else {
              kernels::gemm(false, false, N, in, r, 1.0f, g.data(), r, av.data(), in, 1.0f,
                            dx2.data(), in);
            }
          }
          x.accumulate_owned_grad(dx2.reshape(x.shape()));
        }
        if (base.weight.defined() && base.weight.requires_grad()) {
          Tensor<float>& gw = base.weight.grad_storage();
          if (base.layout == WeightLayout::in_out)
            scholar::matmul_into(gw, x2.t(), dy2, 1.0f, 1.0f);
          else
            scholar::matmul_into(gw, dy2.t(), x2, 1.0f, 1.0f);
        }
        if (bias.defined() && bias.requires_grad())
          bias.accumulate_owned_grad(scholar::sum(dy2, 0));
        if (branch && a.requires_grad()) {  // dA = g^T xd  [r, in]
          Tensor<float>& ga = a.grad_storage();
          kernels::gemm(true, false, r, in, N, 1.0f, g.data(), r, xd.data(), in, 1.0f, ga.data(),
                        in);
        }
        if (branch && b.requires_grad()) {  // dB = s dy^T h  [out, r]
          Tensor<float>& gb = b.grad_storage();
          kernels::gemm(true, false, out, r, N, s, dy2.data(), out, h.data(), r, 1.0f, gb.data(),
                        r);
        }
      });
}

}  // namespace

QuantizedWeight QuantizedWeight::quantize(const Tensor<float>& w, WeightType type) {
  if (w.rank() != 2) fail<ShapeError>("QuantizedWeight: weight must be 2-D, got ", w.shape().str());
  const WeightTypeInfo& info = weight_type_info(type);
  const int64_t rows = w.size(0), cols = w.size(1);
  if (rows < 1 || cols < 1 || cols % info.block_values != 0)
    fail<ShapeError>("QuantizedWeight: ", weight_type_name(type), " stores rows of whole ",
                     info.block_values, "-value blocks; a weight of shape ", w.shape().str(),
                     " has rows of ", cols);
  QuantizedWeight q;
  q.type = type;
  q.rows = rows;
  q.cols = cols;
  const size_t rb = row_bytes(type, cols);
  q.bytes.resize(rb * static_cast<size_t>(rows));
  const Tensor<float> wc = w.contiguous();
  kernels::active().weight(type).from_f32(q.bytes.data(), wc.data(),
                                          static_cast<size_t>(rows * cols));
  return q;
}

Tensor<float> QuantizedWeight::dequantize() const {
  Tensor<float> w = Tensor<float>::empty({rows, cols});
  kernels::active().weight(type).to_f32(w.data(), bytes.data(), static_cast<size_t>(rows * cols));
  return w;
}

Var linear(const Var& x, const std::shared_ptr<const QuantizedWeight>& weight, const Var& bias) {
  if (!weight) fail<ValueError>("linear: the compact weight is null");
  return linear_impl("linear", x, Base{{}, weight, WeightLayout::out_in}, bias, nullptr);
}

Var lora_linear(const Var& x, const Var& weight, const Var& bias, WeightLayout layout,
                const LoraBranch& lora) {
  return linear_impl("lora_linear", x, Base{weight, nullptr, layout}, bias, &lora);
}

Var lora_linear(const Var& x, const std::shared_ptr<const QuantizedWeight>& weight, const Var& bias,
                const LoraBranch& lora) {
  if (!weight) fail<ValueError>("lora_linear: the compact weight is null");
  return linear_impl("lora_linear", x, Base{{}, weight, WeightLayout::out_in}, bias, &lora);
}

}  // namespace scholar::autograd
