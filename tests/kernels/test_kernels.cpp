// Every kernel on every instruction set this CPU has, against its scalar reference twin (which
// computes in double), over sizes 1..67, 768 and 4096 and unaligned starting offsets.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/tensor/dtype.hpp"
#include "support.hpp"

using namespace scholar;
using kernels::KernelTable;
namespace ref = kernels::ref;

namespace {

std::vector<size_t> sizes() {
  std::vector<size_t> s;
  for (size_t n = 1; n <= 67; ++n) s.push_back(n);
  s.push_back(768);
  s.push_back(4096);
  return s;
}
constexpr size_t kOffsets[] = {0, 1, 2, 3};

std::string label(const KernelTable* t, size_t n, size_t off) {
  return std::string(kernels::isa_name(t->isa)) + " n=" + std::to_string(n) +
         " offset=" + std::to_string(off);
}

// Runs body(table, n, offset, rng) for every table, size and offset.
template <class F>
void sweep(F&& body) {
  std::mt19937 rng(1234);
  for (const KernelTable* t : test::all_tables())
    for (size_t n : sizes())
      for (size_t off : kOffsets) body(t, n, off, rng);
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

}  // namespace

TEST_CASE("every instruction set the CPU offers has a table", "[kernels]") {
  const auto tables = test::all_tables();
  REQUIRE(!tables.empty());
  CHECK(tables.front()->isa == kernels::Isa::scalar);
  INFO("CPU features: " << kernels::cpu_features());
  CHECK(kernels::table_for(kernels::best_isa()) != nullptr);
  CHECK(kernels::active().isa == kernels::table_for(kernels::active().isa)->isa);
  CHECK(kernels::parse_isa("avx2") == kernels::Isa::avx2);
  CHECK_THROWS_AS(kernels::parse_isa("sse9"), ValueError);
}

TEST_CASE("elementwise kernels match the scalar twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf a(n, off), b(n, (off + 1) % 4), got(n, off), want(n, off);
    test::fill_uniform(a.p, n, rng, -3, 3);
    test::fill_uniform(b.p, n, rng, 0.5f, 4);
    const std::string at = label(t, n, off);
    struct Op {
      const char* name;
      void (*fast)(float*, const float*, const float*, size_t);
      void (*slow)(float*, const float*, const float*, size_t);
    } ops[] = {{"add", t->add, ref::add},
               {"sub", t->sub, ref::sub},
               {"mul", t->mul, ref::mul},
               {"div", t->div, ref::div},
               {"maximum", t->maximum, ref::maximum}};
    for (const Op& op : ops) {
      op.fast(got.p, a.p, b.p, n);
      op.slow(want.p, a.p, b.p, n);
      test::check_close(got.p, want.p, n, 0, 0, std::string(op.name) + " " + at);  // exact
    }
    // In place (out == a) gives the same as out of place.
    std::memcpy(got.p, a.p, n * sizeof(float));
    t->add(got.p, got.p, b.p, n);
    ref::add(want.p, a.p, b.p, n);
    test::check_close(got.p, want.p, n, 0, 0, "add in place " + at);

    t->add_scalar(got.p, a.p, 0.25f, n);
    ref::add_scalar(want.p, a.p, 0.25f, n);
    test::check_close(got.p, want.p, n, 0, 0, "add_scalar " + at);
    t->scale(got.p, a.p, -1.5f, n);
    ref::scale(want.p, a.p, -1.5f, n);
    test::check_close(got.p, want.p, n, 0, 0, "scale " + at);
    // axpy: the SIMD path fuses the multiply-add (one rounding instead of two).
    std::memcpy(got.p, b.p, n * sizeof(float));
    std::memcpy(want.p, b.p, n * sizeof(float));
    t->axpy(got.p, 0.3f, a.p, n);
    ref::axpy(want.p, 0.3f, a.p, n);
    test::check_close(got.p, want.p, n, 1e-6, 1e-6, "axpy " + at);
  });
}

TEST_CASE("maximum propagates NaN from either side", "[kernels]") {
  for (const KernelTable* t : test::all_tables()) {
    std::vector<float> a(37, 1.0f), b(37, 2.0f), out(37);
    a[3] = kNaN;
    b[20] = kNaN;
    b[35] = kNaN;
    t->maximum(out.data(), a.data(), b.data(), a.size());
    CHECK(std::isnan(out[3]));
    CHECK(std::isnan(out[20]));
    CHECK(std::isnan(out[35]));
    CHECK(out[0] == 2.0f);
  }
}

TEST_CASE("reductions match the double-precision twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf a(n, off), b(n, (off + 3) % 4);
    test::fill_uniform(a.p, n, rng, -2, 2);
    test::fill_uniform(b.p, n, rng, -2, 2);
    double mag_dot = 0, mag_sum = 0, mag_l2 = 0;
    for (size_t i = 0; i < n; ++i) {
      mag_dot += std::fabs(double{a[i]} * b[i]);
      mag_sum += std::fabs(a[i]);
      mag_l2 += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
    }
    INFO(label(t, n, off));
    // Float accumulation error grows with n; bound it by a multiple of eps * sum of |terms|.
    const double tol = 4e-7 * std::sqrt(static_cast<double>(n)) + 1e-7;
    CHECK(std::fabs(t->dot(a.p, b.p, n) - ref::dot(a.p, b.p, n)) <= tol * mag_dot + 1e-30);
    CHECK(std::fabs(t->sum(a.p, n) - ref::sum(a.p, n)) <= tol * mag_sum + 1e-30);
    CHECK(std::fabs(t->l2_squared(a.p, b.p, n) - ref::l2_squared(a.p, b.p, n)) <=
          tol * mag_l2 + 1e-30);
    CHECK(t->max(a.p, n) == ref::max(a.p, n));
  });
}

TEST_CASE("dot_rows and axpy_rows over strided rows match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    for (size_t rows : {size_t{1}, size_t{3}, size_t{17}}) {
      const size_t lda = n + 5 + off;  // rows at a stride, as one head's rows in a KV cache
      test::Buf A(rows * lda, off), x(n, (off + 1) % 4), p(rows, 0), y(n, (off + 2) % 4);
      test::fill_uniform(A.p, rows * lda, rng, -2, 2);
      test::fill_uniform(x.p, n, rng, -2, 2);
      test::fill_uniform(p.p, rows, rng, 0, 1);
      test::fill_uniform(y.p, n, rng, -1, 1);
      INFO(label(t, n, off) << " rows=" << rows);
      const double tol = 4e-7 * std::sqrt(static_cast<double>(n + rows)) + 1e-7;
      std::vector<float> got(rows), want(rows);
      t->dot_rows(got.data(), A.p, lda, x.p, rows, n, 0.125f);
      ref::dot_rows(want.data(), A.p, lda, x.p, rows, n, 0.125f);
      for (size_t r = 0; r < rows; ++r) {
        double mag = 0;
        for (size_t i = 0; i < n; ++i) mag += std::fabs(double{A[r * lda + i]} * x[i]);
        CHECK(std::fabs(got[r] - want[r]) <= 0.125 * tol * mag + 1e-30);
      }
      std::vector<float> yg(y.p, y.p + n), yw(y.p, y.p + n);
      t->axpy_rows(yg.data(), p.p, A.p, lda, rows, n);
      ref::axpy_rows(yw.data(), p.p, A.p, lda, rows, n);
      for (size_t i = 0; i < n; ++i) {
        double mag = std::fabs(y[i]);
        for (size_t r = 0; r < rows; ++r) mag += std::fabs(double{p[r]} * A[r * lda + i]);
        CHECK(std::fabs(yg[i] - yw[i]) <= tol * mag + 1e-30);
      }
    }
  });
}

TEST_CASE("distances to bf16 and byte-quantized vectors match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf a(n, off), b(n, (off + 1) % 4);
    test::fill_uniform(a.p, n, rng, -2, 2);
    test::fill_uniform(b.p, n, rng, -2, 2);
    std::vector<uint16_t> h(n + 3);
    std::vector<uint8_t> c(n + 3);
    for (size_t i = 0; i < n; ++i) {
      h[off + i] = bf16(b[i]).bits;
      c[off + i] = static_cast<uint8_t>(rng() % 256);
    }
    const float lo = -1.7f, step = 3.4f / 255;
    double mag_dot = 0, mag_l2 = 0, mag_dq = 0, mag_lq = 0;
    for (size_t i = 0; i < n; ++i) {
      const double bb = static_cast<float>(bf16::from_bits(h[off + i]));
      const double q = std::fma(step, float(c[off + i]), lo);
      mag_dot += std::fabs(a[i] * bb);
      mag_l2 += (a[i] - bb) * (a[i] - bb);
      mag_dq += std::fabs(a[i] * q);
      mag_lq += (a[i] - q) * (a[i] - q);
    }
    INFO(label(t, n, off));
    const double tol = 4e-7 * std::sqrt(static_cast<double>(n)) + 1e-7;
    const uint16_t* hp = h.data() + off;
    const uint8_t* cp = c.data() + off;
    CHECK(std::fabs(t->dot_bf16(a.p, hp, n) - ref::dot_bf16(a.p, hp, n)) <= tol * mag_dot + 1e-30);
    CHECK(std::fabs(t->l2_squared_bf16(a.p, hp, n) - ref::l2_squared_bf16(a.p, hp, n)) <=
          tol * mag_l2 + 1e-30);
    CHECK(std::fabs(t->dot_u8(a.p, cp, lo, step, n) - ref::dot_u8(a.p, cp, lo, step, n)) <=
          tol * mag_dq + 1e-30);
    CHECK(std::fabs(t->l2_squared_u8(a.p, cp, lo, step, n) -
                    ref::l2_squared_u8(a.p, cp, lo, step, n)) <= tol * mag_lq + 1e-30);
  });
}

TEST_CASE("max reports NaN and handles infinities", "[kernels]") {
  for (const KernelTable* t : test::all_tables()) {
    for (size_t n : {1u, 5u, 16u, 33u, 100u}) {
      std::vector<float> x(n, -1.0f);
      x[n / 2] = kNaN;
      INFO(kernels::isa_name(t->isa) << " n=" << n);
      CHECK(std::isnan(t->max(x.data(), n)));
      x[n / 2] = -kInf;
      CHECK(t->max(x.data(), n) == (n == 1 ? -kInf : -1.0f));
      x[n - 1] = kInf;
      CHECK(t->max(x.data(), n) == kInf);
    }
    CHECK(t->max(nullptr, 0) == -kInf);
    CHECK(t->sum(nullptr, 0) == 0.0f);
  }
}

TEST_CASE("softmax and log-softmax match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf x(n, off), got(n, off), want(n, (off + 2) % 4);
    test::fill_uniform(x.p, n, rng, -20, 20);
    const std::string at = label(t, n, off);
    t->softmax(got.p, x.p, n);
    ref::softmax(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-12, "softmax " + at);
    t->log_softmax(got.p, x.p, n);
    ref::log_softmax(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 1e-6, 2e-6, "log_softmax " + at);
    // In place.
    std::memcpy(got.p, x.p, n * sizeof(float));
    t->softmax(got.p, got.p, n);
    ref::softmax(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-12, "softmax in place " + at);
  });
}

TEST_CASE("softmax handles masked (-inf), huge and NaN logits", "[kernels]") {
  for (const KernelTable* t : test::all_tables()) {
    for (size_t n : {3u, 17u, 40u, 130u}) {
      std::vector<float> x(n), got(n), want(n);
      for (size_t i = 0; i < n; ++i)
        x[i] = (i % 3 == 0) ? -kInf : static_cast<float>(i) * 7.0f - 300.0f;
      const std::string at = std::string(kernels::isa_name(t->isa)) + " n=" + std::to_string(n);
      t->softmax(got.data(), x.data(), n);
      ref::softmax(want.data(), x.data(), n);
      test::check_close(got, want, 2e-6, 1e-30, "masked softmax " + at);
      for (size_t i = 0; i < n; i += 3) CHECK(got[i] == 0.0f);
      t->log_softmax(got.data(), x.data(), n);
      ref::log_softmax(want.data(), x.data(), n);
      test::check_close(got, want, 1e-6, 1e-4, "masked log_softmax " + at);
      x[1] = kNaN;
      t->softmax(got.data(), x.data(), n);
      for (float v : got) CHECK(std::isnan(v));
    }
  }
}

TEST_CASE("layernorm forward and backward match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t C, size_t off, std::mt19937& rng) {
    test::Buf x(C, off), w(C, 1), b(C, 2), got(C, off), want(C, 3);
    test::fill_uniform(x.p, C, rng, -2, 6);  // a non-zero mean
    test::fill_uniform(w.p, C, rng, 0.5, 1.5);
    test::fill_uniform(b.p, C, rng, -1, 1);
    const std::string at = label(t, C, off);
    float m1, r1, m2, r2;
    t->layernorm_forward(got.p, &m1, &r1, x.p, w.p, b.p, C, 1e-5f);
    ref::layernorm_forward(want.p, &m2, &r2, x.p, w.p, b.p, C, 1e-5f);
    test::check_close(got.p, want.p, C, 1e-5, 2e-5, "layernorm_forward " + at);
    CHECK(std::fabs(m1 - m2) <= 1e-5 * (1 + std::fabs(m2)));
    CHECK(std::fabs(r1 - r2) <= 1e-5 * r2);
    t->layernorm_forward(got.p, nullptr, nullptr, x.p, w.p, nullptr, C, 1e-5f);
    ref::layernorm_forward(want.p, nullptr, nullptr, x.p, w.p, nullptr, C, 1e-5f);
    test::check_close(got.p, want.p, C, 1e-5, 2e-5, "layernorm_forward without bias " + at);

    test::Buf dout(C, 2), dx1(C, off), dx2(C, 0), dw1(C, 1), dw2(C, 1), db1(C, 3), db2(C, 3);
    test::fill_uniform(dout.p, C, rng, -1, 1);
    test::fill_uniform(dx1.p, C, rng, -1, 1);  // backward accumulates onto what is there
    std::memcpy(dx2.p, dx1.p, C * 4);
    test::fill_uniform(dw1.p, C, rng, -1, 1);
    std::memcpy(dw2.p, dw1.p, C * 4);
    test::fill_uniform(db1.p, C, rng, -1, 1);
    std::memcpy(db2.p, db1.p, C * 4);
    t->layernorm_backward(dx1.p, dw1.p, db1.p, dout.p, x.p, w.p, m2, r2, C);
    ref::layernorm_backward(dx2.p, dw2.p, db2.p, dout.p, x.p, w.p, m2, r2, C);
    test::check_close(dx1.p, dx2.p, C, 1e-4, 1e-5, "layernorm_backward dx " + at);
    test::check_close(dw1.p, dw2.p, C, 1e-5, 1e-6, "layernorm_backward dweight " + at);
    test::check_close(db1.p, db2.p, C, 1e-6, 1e-7, "layernorm_backward dbias " + at);
  });
}

TEST_CASE("rmsnorm forward and backward match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t C, size_t off, std::mt19937& rng) {
    test::Buf x(C, off), w(C, 1), got(C, off), want(C, 3);
    test::fill_uniform(x.p, C, rng, -2, 2);
    test::fill_uniform(w.p, C, rng, 0.5, 1.5);
    const std::string at = label(t, C, off);
    float r1, r2;
    t->rmsnorm_forward(got.p, &r1, x.p, w.p, C, 1e-6f);
    ref::rmsnorm_forward(want.p, &r2, x.p, w.p, C, 1e-6f);
    test::check_close(got.p, want.p, C, 1e-5, 1e-6, "rmsnorm_forward " + at);
    CHECK(std::fabs(r1 - r2) <= 1e-5 * r2);
    test::Buf dout(C, 2), dx1(C, off), dx2(C, 0), dw1(C, 1), dw2(C, 1);
    test::fill_uniform(dout.p, C, rng, -1, 1);
    test::fill_uniform(dx1.p, C, rng, -1, 1);
    std::memcpy(dx2.p, dx1.p, C * 4);
    test::fill_uniform(dw1.p, C, rng, -1, 1);
    std::memcpy(dw2.p, dw1.p, C * 4);
    t->rmsnorm_backward(dx1.p, dw1.p, dout.p, x.p, w.p, r2, C);
    ref::rmsnorm_backward(dx2.p, dw2.p, dout.p, x.p, w.p, r2, C);
    test::check_close(dx1.p, dx2.p, C, 1e-4, 1e-5, "rmsnorm_backward dx " + at);
    test::check_close(dw1.p, dw2.p, C, 1e-5, 1e-6, "rmsnorm_backward dweight " + at);
  });
}

TEST_CASE("activations forward and backward match the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf x(n, off), u(n, 1), got(n, off), want(n, 2), dout(n, 3);
    test::fill_uniform(x.p, n, rng, -8, 8);
    test::fill_uniform(u.p, n, rng, -2, 2);
    test::fill_uniform(dout.p, n, rng, -1, 1);
    const std::string at = label(t, n, off);
    t->gelu_forward(got.p, x.p, n);
    ref::gelu_forward(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-7, "gelu_forward " + at);
    t->gelu_erf_forward(got.p, x.p, n);
    ref::gelu_erf_forward(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-7, "gelu_erf_forward " + at);
    t->silu_forward(got.p, x.p, n);
    ref::silu_forward(want.p, x.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-7, "silu_forward " + at);
    t->swiglu_forward(got.p, x.p, u.p, n);
    ref::swiglu_forward(want.p, x.p, u.p, n);
    test::check_close(got.p, want.p, n, 2e-6, 1e-7, "swiglu_forward " + at);

    auto backward = [&](const char* name, auto fast, auto slow) {
      test::fill_uniform(got.p, n, rng, -1, 1);
      std::memcpy(want.p, got.p, n * 4);
      fast(got.p, dout.p, x.p, n);
      slow(want.p, dout.p, x.p, n);
      test::check_close(got.p, want.p, n, 1e-5, 1e-6, std::string(name) + " " + at);
    };
    backward("gelu_backward", t->gelu_backward, ref::gelu_backward);
    backward("gelu_erf_backward", t->gelu_erf_backward, ref::gelu_erf_backward);
    backward("silu_backward", t->silu_backward, ref::silu_backward);

    test::Buf dg1(n, off), dg2(n, 0), du1(n, 1), du2(n, 1);
    test::fill_uniform(dg1.p, n, rng, -1, 1);
    std::memcpy(dg2.p, dg1.p, n * 4);
    test::fill_uniform(du1.p, n, rng, -1, 1);
    std::memcpy(du2.p, du1.p, n * 4);
    t->swiglu_backward(dg1.p, du1.p, dout.p, x.p, u.p, n);
    ref::swiglu_backward(dg2.p, du2.p, dout.p, x.p, u.p, n);
    test::check_close(dg1.p, dg2.p, n, 1e-5, 1e-6, "swiglu_backward dgate " + at);
    test::check_close(du1.p, du2.p, n, 1e-5, 1e-6, "swiglu_backward dup " + at);
  });
}

TEST_CASE("activations at the edges: infinities, NaN, tiny and huge inputs", "[kernels]") {
  // Below x = -88 the SIMD sigmoid returns sigmoid(-88) ~ 6e-39 rather than something smaller, so
  // the error bound there is 1e-38 |x| (an error of 6e-9 at x = -1e30, and exactly 0 or NaN where
  // the exact result is).
  const std::vector<float> special = {0.0f,  -0.0f,  1e-40f, -1e-40f, 1e-20f, 30.0f,  -30.0f,
                                      88.0f, -88.0f, 100.0f, -100.0f, 1e30f,  -1e30f, kInf,
                                      -kInf, kNaN,   3.0f,   -3.0f,   0.5f,   -0.5f};
  for (const KernelTable* t : test::all_tables()) {
    std::vector<float> x;
    for (int rep = 0; rep < 4; ++rep) x.insert(x.end(), special.begin(), special.end());
    const size_t n = x.size();
    std::vector<float> got(n), want(n);
    auto check = [&](const char* what) {
      for (size_t i = 0; i < n; ++i) {
        INFO(what << " " << kernels::isa_name(t->isa) << " x = " << x[i] << ": got " << got[i]
                  << ", want " << want[i]);
        if (std::isnan(want[i]) || std::isinf(want[i])) {
          CHECK((std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i]));
        } else {
          CHECK(std::fabs(got[i] - want[i]) <= 2e-6 * std::fabs(want[i]) + 1e-38 * std::fabs(x[i]));
        }
      }
    };
    t->gelu_forward(got.data(), x.data(), n);
    ref::gelu_forward(want.data(), x.data(), n);
    check("gelu");
    t->gelu_erf_forward(got.data(), x.data(), n);
    ref::gelu_erf_forward(want.data(), x.data(), n);
    check("gelu_erf");
    t->silu_forward(got.data(), x.data(), n);
    ref::silu_forward(want.data(), x.data(), n);
    check("silu");
  }
}

TEST_CASE("rope rotates pairs in both layouts, and inverse undoes it", "[kernels]") {
  std::mt19937 rng(7);
  for (const KernelTable* t : test::all_tables()) {
    for (size_t pairs : {1u, 2u, 3u, 7u, 8u, 16u, 17u, 32u, 33u, 64u}) {
      for (auto style : {kernels::RopeStyle::half, kernels::RopeStyle::interleaved}) {
        for (size_t off : kOffsets) {
          const size_t D = 2 * pairs;
          test::Buf x(D, off), got(D, off), want(D, 1), back(D, 2), c(pairs, off), s(pairs, 3);
          test::fill_uniform(x.p, D, rng, -2, 2);
          kernels::rope_angles(c.p, s.p, 37.0, pairs, 10000.0);
          const std::string at = std::string(kernels::isa_name(t->isa)) +
                                 " pairs=" + std::to_string(pairs) +
                                 (style == kernels::RopeStyle::half ? " half" : " interleaved");
          t->rope(got.p, x.p, c.p, s.p, pairs, style, false);
          ref::rope(want.p, x.p, c.p, s.p, pairs, style, false);
          test::check_close(got.p, want.p, D, 1e-6, 1e-6, "rope " + at);
          t->rope(back.p, got.p, c.p, s.p, pairs, style, true);
          test::check_close(back.p, x.p, D, 1e-5, 1e-5, "rope inverse " + at);
          // In place.
          std::memcpy(back.p, x.p, D * 4);
          t->rope(back.p, back.p, c.p, s.p, pairs, style, false);
          test::check_close(back.p, want.p, D, 1e-6, 1e-6, "rope in place " + at);
        }
      }
    }
  }
}

TEST_CASE("rope_angles follow theta_base^(-2p/D) divided by the frequency factors", "[kernels]") {
  std::vector<float> c(4), s(4);
  kernels::rope_angles(c.data(), s.data(), 3.0, 4, 10000.0);
  for (int p = 0; p < 4; ++p) {
    const double angle = 3.0 * std::pow(10000.0, -2.0 * p / 8.0);
    CHECK(c[p] == Approx(std::cos(angle)).epsilon(1e-7));
    CHECK(s[p] == Approx(std::sin(angle)).epsilon(1e-7));
  }
  // With frequency factors (RoPE scaling), each pair's angle is divided by its factor.
  const std::vector<float> factors = {1.0f, 2.0f, 4.78f, 8.0f};
  kernels::rope_angles(c.data(), s.data(), 3.0, 4, 10000.0, factors.data());
  for (int p = 0; p < 4; ++p) {
    const double angle = 3.0 * std::pow(10000.0, -2.0 * p / 8.0) / double{factors[p]};
    CHECK(c[p] == Approx(std::cos(angle)).epsilon(1e-7));
    CHECK(s[p] == Approx(std::sin(angle)).epsilon(1e-7));
  }
}

TEST_CASE("conversions to and from bf16 and f16 are bit-exact on every path", "[kernels]") {
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> bits;
  for (const KernelTable* t : test::all_tables()) {
    for (size_t n : sizes()) {
      for (size_t off : kOffsets) {
        // Random bit patterns cover every exponent, subnormals, infinities and NaNs.
        std::vector<float> x(n + off);
        for (auto& v : x) {
          const uint32_t u = bits(rng);
          std::memcpy(&v, &u, 4);
        }
        if (n > 4) {
          x[off] = 65520.0f;            // rounds to f16 infinity
          x[off + 1] = 65519.99f;       // rounds to 65504
          x[off + 2] = 2.98023224e-8f;  // exactly half the smallest f16 subnormal: ties to 0
          x[off + 3] = 1.0f + 0x1p-8f;  // a bf16 tie: stays 1
        }
        std::vector<uint16_t> h1(n + off), h2(n + off);
        std::vector<float> f1(n + off), f2(n + off);
        const std::string at = label(t, n, off);
        t->f32_to_bf16(h1.data() + off, x.data() + off, n);
        ref::f32_to_bf16(h2.data() + off, x.data() + off, n);
        CHECK(std::memcmp(h1.data() + off, h2.data() + off, n * 2) == 0);
        t->bf16_to_f32(f1.data() + off, h1.data() + off, n);
        ref::bf16_to_f32(f2.data() + off, h1.data() + off, n);
        CHECK(std::memcmp(f1.data() + off, f2.data() + off, n * 4) == 0);
        t->f32_to_f16(h1.data() + off, x.data() + off, n);
        ref::f32_to_f16(h2.data() + off, x.data() + off, n);
        // NaN payloads may differ between hardware and software; everything else must match.
        for (size_t i = off; i < off + n; ++i) {
          const bool nan1 = (h1[i] & 0x7c00) == 0x7c00 && (h1[i] & 0x3ff);
          const bool nan2 = (h2[i] & 0x7c00) == 0x7c00 && (h2[i] & 0x3ff);
          if (nan1 || nan2) {
            CHECK(nan1 == nan2);
          } else if (h1[i] != h2[i]) {
            INFO(at << " f32_to_f16 of " << x[i] << ": " << h1[i] << " vs " << h2[i]);
            CHECK(h1[i] == h2[i]);
          }
        }
        t->f16_to_f32(f1.data() + off, h2.data() + off, n);
        ref::f16_to_f32(f2.data() + off, h2.data() + off, n);
        for (size_t i = off; i < off + n; ++i) {
          if (std::isnan(f2[i]))
            CHECK(std::isnan(f1[i]));
          else
            CHECK(std::memcmp(&f1[i], &f2[i], 4) == 0);
        }
      }
    }
  }
}

TEST_CASE("the AdamW step matches the twin", "[kernels]") {
  sweep([](const KernelTable* t, size_t n, size_t off, std::mt19937& rng) {
    test::Buf p1(n, off), m1(n, 1), v1(n, 2), g(n, 3), p2(n, 0), m2(n, 0), v2(n, 0);
    test::fill_uniform(p1.p, n, rng, -1, 1);
    test::fill_uniform(m1.p, n, rng, -0.1f, 0.1f);
    test::fill_uniform(v1.p, n, rng, 0.0f, 0.01f);
    test::fill_uniform(g.p, n, rng, -1, 1);
    std::memcpy(p2.p, p1.p, n * 4);
    std::memcpy(m2.p, m1.p, n * 4);
    std::memcpy(v2.p, v1.p, n * 4);
    const float bc1 = 1.0f - std::pow(0.9f, 3.0f), bc2 = 1.0f - std::pow(0.999f, 3.0f);
    t->adamw(p1.p, m1.p, v1.p, g.p, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, bc1, bc2);
    ref::adamw(p2.p, m2.p, v2.p, g.p, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, bc1, bc2);
    const std::string at = label(t, n, off);
    test::check_close(p1.p, p2.p, n, 1e-6, 1e-7, "adamw param " + at);
    test::check_close(m1.p, m2.p, n, 1e-6, 1e-8, "adamw m " + at);
    test::check_close(v1.p, v2.p, n, 1e-6, 1e-10, "adamw v " + at);
  });
}

TEST_CASE("span wrappers check sizes", "[kernels]") {
  std::vector<float> a(4, 1.0f), b(5, 1.0f), out(4);
  CHECK_THROWS_AS(kernels::add(out, a, b), ShapeError);
  CHECK_THROWS_WITH(kernels::dot(a, b), Catch::Contains("dot") && Catch::Contains("4 vs 5"));
  CHECK(kernels::dot(a, a) == 4.0f);
  CHECK(kernels::l2_squared(a, a) == 0.0f);
}
