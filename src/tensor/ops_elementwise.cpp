// Elementwise operations on float tensors, with NumPy broadcasting.
#include <cmath>
#include <limits>

#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/tensor/ops.hpp"
#include "tensor/strided.hpp"

namespace scholar {

namespace {

void check_defined(const FloatTensor& t, const char* op) {
  if (!t.defined()) fail<ValueError>(op, ": tensor is undefined");
}

enum class Bin { add, sub, mul, div, max };

float apply(Bin op, float a, float b) {
  switch (op) {
    case Bin::add:
      return a + b;
    case Bin::sub:
      return a - b;
    case Bin::mul:
      return a * b;
    case Bin::div:
      return a / b;
    case Bin::max:
      return (a != a || a > b) ? a : b;
  }
  return 0.0f;
}

using BinKernel = void (*)(float*, const float*, const float*, size_t);

BinKernel kernel_for(Bin op) {
  const kernels::KernelTable& k = kernels::active();
  switch (op) {
    case Bin::add:
      return k.add;
    case Bin::sub:
      return k.sub;
    case Bin::mul:
      return k.mul;
    case Bin::div:
      return k.div;
    case Bin::max:
      return k.maximum;
  }
  return nullptr;
}

// The layout of t relative to t.data(), broadcast to `shape`.
Layout expanded(const FloatTensor& t, const Shape& shape) {
  Layout l = t.layout();
  l.offset = 0;
  return layout::expand(l, shape);
}

// out[...] = a[...] op b[...], all three already of out's shape (a and b may be broadcast views).
void binary_into(Bin op, const FloatTensor& out, const Layout& la, const float* pa,
                 const Layout& lb, const float* pb) {
  const Strides* strides[3] = {&out.strides(), &la.strides, &lb.strides};
  const detail::StridedLoop<3> loop(out.shape(), strides);
  const kernels::KernelTable& k = kernels::active();
  const BinKernel kern = kernel_for(op);
  float* po = out.data();
  loop.run([&](const int64_t* off, int64_t n64, const int64_t* st) {
    float* o = po + off[0];
    const float* x = pa + off[1];
    const float* y = pb + off[2];
    const auto n = static_cast<size_t>(n64);
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) return kern(o, x, y, n);
    if (st[0] == 1 && st[1] == 1 && st[2] == 0) {  // row op scalar
      if (op == Bin::add) return k.add_scalar(o, x, *y, n);
      if (op == Bin::sub) return k.add_scalar(o, x, -*y, n);
      if (op == Bin::mul) return k.scale(o, x, *y, n);
    }
    if (st[0] == 1 && st[1] == 0 && st[2] == 1) {  // scalar op row
      if (op == Bin::add) return k.add_scalar(o, y, *x, n);
      if (op == Bin::mul) return k.scale(o, y, *x, n);
    }
    for (int64_t i = 0; i < n64; ++i) o[i * st[0]] = apply(op, x[i * st[1]], y[i * st[2]]);
  });
}

FloatTensor binary(const char* name, Bin op, const FloatTensor& a, const FloatTensor& b) {
  check_defined(a, name);
  check_defined(b, name);
  const Shape shape = layout::broadcast_shapes(a.shape(), b.shape(), name);
  FloatTensor out = FloatTensor::empty(shape);
  binary_into(op, out, expanded(a, shape), a.data(), expanded(b, shape), b.data());
  return out;
}

void check_writable(const FloatTensor& a, const char* name) {
  check_defined(a, name);
  for (int d = 0; d < a.rank(); ++d)
    if (a.strides()[d] == 0 && a.shape()[d] > 1)
      fail<ValueError>(name, ": cannot write in place into a broadcast (expanded) view of shape ",
                       a.shape().str());
}

void binary_inplace(const char* name, Bin op, const FloatTensor& a, const FloatTensor& b) {
  check_writable(a, name);
  check_defined(b, name);
  const Shape bs = layout::broadcast_shapes(a.shape(), b.shape(), name);
  if (!(bs == a.shape()))
    fail<ShapeError>(name, ": in-place result would have shape ", bs.str(), " but the target has ",
                     a.shape().str());
  Layout la = a.layout();
  la.offset = 0;
  binary_into(op, a, la, a.data(), expanded(b, a.shape()), b.data());
}

// out = f(x) elementwise; `row` handles a contiguous row (x and out both stride 1) when given.
template <class F>
FloatTensor unary(const char* name, const FloatTensor& x, F f,
                  void (*row)(float*, const float*, size_t) = nullptr) {
  check_defined(x, name);
  FloatTensor out = FloatTensor::empty(x.shape());
  Layout lx = x.layout();
  lx.offset = 0;
  const Strides* strides[2] = {&out.strides(), &lx.strides};
  const detail::StridedLoop<2> loop(x.shape(), strides);
  float* po = out.data();
  const float* px = x.data();
  loop.run([&](const int64_t* off, int64_t n, const int64_t* st) {
    float* o = po + off[0];
    const float* in = px + off[1];
    if (row && st[0] == 1 && st[1] == 1) return row(o, in, static_cast<size_t>(n));
    if (row) {
      // Strided rows go through the same kernel via a small buffer, so results never depend on
      // the layout of the input.
      float buf[256];
      for (int64_t b = 0; b < n; b += 256) {
        const int64_t m = std::min<int64_t>(256, n - b);
        for (int64_t i = 0; i < m; ++i) buf[i] = in[(b + i) * st[1]];
        row(buf, buf, static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) o[(b + i) * st[0]] = buf[i];
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(in[i * st[1]]);
  });
  return out;
}

}  // namespace

FloatTensor add(const FloatTensor& a, const FloatTensor& b) {
  return binary("add", Bin::add, a, b);
}
FloatTensor sub(const FloatTensor& a, const FloatTensor& b) {
  return binary("sub", Bin::sub, a, b);
}
FloatTensor mul(const FloatTensor& a, const FloatTensor& b) {
  return binary("mul", Bin::mul, a, b);
}
FloatTensor div(const FloatTensor& a, const FloatTensor& b) {
  return binary("div", Bin::div, a, b);
}
FloatTensor maximum(const FloatTensor& a, const FloatTensor& b) {
  return binary("maximum", Bin::max, a, b);
}

FloatTensor add(const FloatTensor& a, float s) {
  return unary("add", a, [s](float v) { return v + s; });
}
FloatTensor sub(const FloatTensor& a, float s) {
  return unary("sub", a, [s](float v) { return v - s; });
}
FloatTensor mul(const FloatTensor& a, float s) {
  return unary("mul", a, [s](float v) { return v * s; });
}
FloatTensor div(const FloatTensor& a, float s) {
  return unary("div", a, [s](float v) { return v / s; });
}
FloatTensor operator-(float s, const FloatTensor& a) {
  return unary("sub", a, [s](float v) { return s - v; });
}
FloatTensor operator/(float s, const FloatTensor& a) {
  return unary("div", a, [s](float v) { return s / v; });
}
FloatTensor operator-(const FloatTensor& a) {
  return neg(a);
}

void add_(const FloatTensor& a, const FloatTensor& b) {
  binary_inplace("add_", Bin::add, a, b);
}
void sub_(const FloatTensor& a, const FloatTensor& b) {
  binary_inplace("sub_", Bin::sub, a, b);
}
void mul_(const FloatTensor& a, const FloatTensor& b) {
  binary_inplace("mul_", Bin::mul, a, b);
}
void div_(const FloatTensor& a, const FloatTensor& b) {
  binary_inplace("div_", Bin::div, a, b);
}
void add_(const FloatTensor& a, float s) {
  binary_inplace("add_", Bin::add, a, FloatTensor::scalar(s));
}
void mul_(const FloatTensor& a, float s) {
  binary_inplace("mul_", Bin::mul, a, FloatTensor::scalar(s));
}

void axpy_(const FloatTensor& a, float alpha, const FloatTensor& b) {
  check_writable(a, "axpy_");
  check_defined(b, "axpy_");
  if (a.is_contiguous() && b.is_contiguous() && a.shape() == b.shape()) {
    const kernels::KernelTable& k = kernels::active();
    float* pa = a.data();
    const float* pb = b.data();
    parallel_for(0, a.numel(), int64_t{1} << 16, [&](int64_t s, int64_t e) {
      k.axpy(pa + s, alpha, pb + s, static_cast<size_t>(e - s));
    });
    return;
  }
  add_(a, mul(b, alpha));
}

FloatTensor neg(const FloatTensor& x) {
  return unary("neg", x, [](float v) { return -v; });
}
FloatTensor abs(const FloatTensor& x) {
  return unary("abs", x, [](float v) { return std::fabs(v); });
}
FloatTensor exp(const FloatTensor& x) {
  return unary("exp", x, [](float v) { return std::exp(v); });
}
FloatTensor log(const FloatTensor& x) {
  return unary("log", x, [](float v) { return std::log(v); });
}
FloatTensor sqrt(const FloatTensor& x) {
  return unary("sqrt", x, [](float v) { return std::sqrt(v); });
}
FloatTensor rsqrt(const FloatTensor& x) {
  return unary("rsqrt", x, [](float v) { return 1.0f / std::sqrt(v); });
}
FloatTensor square(const FloatTensor& x) {
  return unary("square", x, [](float v) { return v * v; });
}
FloatTensor sin(const FloatTensor& x) {
  return unary("sin", x, [](float v) { return std::sin(v); });
}
FloatTensor cos(const FloatTensor& x) {
  return unary("cos", x, [](float v) { return std::cos(v); });
}
FloatTensor tanh(const FloatTensor& x) {
  return unary("tanh", x, [](float v) { return std::tanh(v); });
}
FloatTensor sigmoid(const FloatTensor& x) {
  return unary("sigmoid", x, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
}
FloatTensor relu(const FloatTensor& x) {
  return unary("relu", x, [](float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); });
}
FloatTensor gelu(const FloatTensor& x) {
  const auto one = [](float v) {
    float o;
    kernels::ref::gelu_forward(&o, &v, 1);
    return o;
  };
  return unary("gelu", x, one, kernels::active().gelu_forward);
}
FloatTensor silu(const FloatTensor& x) {
  return unary(
      "silu", x, [](float v) { return v / (1.0f + std::exp(-v)); }, kernels::active().silu_forward);
}
FloatTensor pow(const FloatTensor& x, float p) {
  return unary("pow", x, [p](float v) { return std::pow(v, p); });
}
FloatTensor clamp(const FloatTensor& x, float lo, float hi) {
  if (!(lo <= hi)) fail<ValueError>("clamp: lo (", lo, ") must not exceed hi (", hi, ")");
  return unary("clamp", x, [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); });
}

double max_abs_diff(const FloatTensor& a, const FloatTensor& b) {
  check_defined(a, "max_abs_diff");
  check_defined(b, "max_abs_diff");
  const Shape shape = layout::broadcast_shapes(a.shape(), b.shape(), "max_abs_diff");
  const Layout la = expanded(a, shape), lb = expanded(b, shape);
  const Strides* strides[2] = {&la.strides, &lb.strides};
  const detail::StridedLoop<2> loop(shape, strides);
  double worst = 0.0;
  loop.for_rows(0, loop.rows, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const float* x = a.data() + off[0];
    const float* y = b.data() + off[1];
    for (int64_t i = 0; i < n; ++i) {
      const float u = x[i * st[0]], v = y[i * st[1]];
      if (std::isnan(u) != std::isnan(v)) worst = std::numeric_limits<double>::quiet_NaN();
      if (std::isnan(u) || std::isnan(v) || std::isnan(worst)) continue;
      if (u == v) continue;  // equal infinities
      worst = std::max(worst, std::fabs(double{u} - double{v}));
    }
  });
  return worst;
}

bool allclose(const FloatTensor& a, const FloatTensor& b, double rtol, double atol) {
  check_defined(a, "allclose");
  check_defined(b, "allclose");
  const Shape shape = layout::broadcast_shapes(a.shape(), b.shape(), "allclose");
  const Layout la = expanded(a, shape), lb = expanded(b, shape);
  const Strides* strides[2] = {&la.strides, &lb.strides};
  const detail::StridedLoop<2> loop(shape, strides);
  bool ok = true;
  loop.for_rows(0, loop.rows, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const float* x = a.data() + off[0];
    const float* y = b.data() + off[1];
    for (int64_t i = 0; i < n && ok; ++i) {
      const double u = x[i * st[0]], v = y[i * st[1]];
      if (u == v) continue;
      if (!(std::fabs(u - v) <= atol + rtol * std::fabs(v))) ok = false;
    }
  });
  return ok;
}

}  // namespace scholar
