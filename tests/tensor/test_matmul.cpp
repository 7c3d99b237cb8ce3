// matmul against a triple loop in double, over plain, transposed, strided, batched and broadcast
// operands, on one and two threads; and gemm's argument checks.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/runtime_switch.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

using namespace scholar;

namespace {

// Reference product of the 2-D views a [M, K] and b [K, N], accumulated in double.
std::vector<double> naive(const FloatTensor& a, const FloatTensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> c(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double{a(i, k)} * double{b(k, j)};
      c[static_cast<size_t>(i * N + j)] = s;
    }
  return c;
}

void check_2d(const FloatTensor& got, const FloatTensor& a, const FloatTensor& b) {
  const auto want = naive(a, b);
  REQUIRE(got.shape() == Shape{a.size(0), b.size(1)});
  const int64_t N = b.size(1);
  for (int64_t i = 0; i < got.size(0); ++i)
    for (int64_t j = 0; j < N; ++j)
      REQUIRE(got(i, j) == Approx(want[static_cast<size_t>(i * N + j)]).epsilon(1e-5).margin(1e-4));
}

// Operand of logical shape [r, c] presented in one of several layouts.
FloatTensor operand(int64_t r, int64_t c, int layout, Generator& gen) {
  switch (layout) {
    case 0:
      return randn({r, c}, gen);  // contiguous
    case 1:
      return randn({c, r}, gen).t();  // transposed
    case 2:
      return randn({r, c + 5}, gen).slice(1, 2, 2 + c);  // padded rows
    case 3:
      return randn({c + 3, r}, gen).slice(0, 1, 1 + c).t();  // padded, transposed
    default:
      return randn({r, 2 * c}, gen).slice(1, 0, 2 * c, 2);  // strided columns
  }
}

}  // namespace

TEST_CASE("2-D matmul over every operand layout and size class", "[matmul]") {
  Generator gen(21);
  const int64_t dims[][3] = {{1, 1, 1},    {1, 17, 9},   {7, 1, 5},     {5, 9, 1},
                             {13, 31, 17}, {64, 48, 96}, {130, 70, 200}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& d : dims)
      for (int la = 0; la < 5; ++la)
        for (int lb = 0; lb < 5; ++lb) {
          const FloatTensor a = operand(d[0], d[1], la, gen), b = operand(d[1], d[2], lb, gen);
          INFO("M=" << d[0] << " K=" << d[1] << " N=" << d[2] << " layouts " << la << "," << lb
                    << " threads=" << threads);
          check_2d(matmul(a, b), a, b);
        }
  }
  set_num_threads(0);
}

TEST_CASE("large products split over threads match the serial result", "[matmul]") {
  Generator gen(22);
  const FloatTensor a = randn({300, 257}, gen), b = randn({257, 190}, gen);
  const FloatTensor v = randn({1, 512}, gen), w = randn({512, 3000}, gen);
  set_num_threads(1);
  const FloatTensor c1 = matmul(a, b), g1 = matmul(v, w), h1 = matmul(a, b.t().contiguous().t());
  set_num_threads(2);
  const FloatTensor c2 = matmul(a, b), g2 = matmul(v, w), h2 = matmul(a, b.t().contiguous().t());
  set_num_threads(0);
  CHECK(max_abs_diff(c1, c2) < 1e-4);
  CHECK(max_abs_diff(g1, g2) < 1e-4);
  CHECK(max_abs_diff(h1, h2) < 1e-4);
  check_2d(c2, a, b);
}

TEST_CASE("batched matmul with broadcast batches", "[matmul]") {
  Generator gen(23);
  const FloatTensor a = randn({4, 5, 6}, gen), b = randn({4, 6, 3}, gen);
  const FloatTensor b1 = randn({1, 6, 3}, gen), b2 = randn({6, 3}, gen);
  const FloatTensor at = randn({4, 6, 5}, gen).transpose(1, 2);  // each batch transposed
  for (const auto& [x, y] :
       {std::pair{a, b}, {a, b1}, {a, b2}, {at, b}, {a, b2.expand({4, 6, 3})}}) {
    const FloatTensor c = matmul(x, y);
    REQUIRE(c.shape() == Shape{4, 5, 3});
    for (int64_t i = 0; i < 4; ++i) {
      const FloatTensor xi = x.rank() == 3 ? x[x.size(0) == 1 ? 0 : i] : x;
      const FloatTensor yi = y.rank() == 3 ? y[y.size(0) == 1 ? 0 : i] : y;
      check_2d(c[i], xi, yi);
    }
  }
  CHECK_THROWS_WITH(matmul(a, randn({3, 6, 3}, gen)), Catch::Contains("batch sizes 4 and 3"));
}

TEST_CASE("matmul_into accumulates with alpha and beta, into strided outputs too", "[matmul]") {
  Generator gen(24);
  const FloatTensor a = randn({8, 5}, gen), b = randn({5, 6}, gen);
  const FloatTensor prod = matmul(a, b);
  FloatTensor out = randn({8, 6}, gen);
  const FloatTensor before = out.clone();
  matmul_into(out, a, b, 0.5f, 2.0f);
  CHECK(max_abs_diff(out, prod * 0.5f + before * 2.0f) < 1e-5);
  FloatTensor wide = FloatTensor::zeros({8, 10});
  matmul_into(wide.slice(1, 2, 8), a, b);
  CHECK(max_abs_diff(wide.slice(1, 2, 8), prod) < 1e-6);
  CHECK(sum_all(abs(wide.slice(1, 0, 2))) == 0.0);
  FloatTensor tr = FloatTensor::zeros({6, 8});
  matmul_into(tr.t(), a, b);  // column-major output: computed through a temporary
  CHECK(max_abs_diff(tr.t(), prod) < 1e-6);
  CHECK_THROWS_AS(matmul_into(FloatTensor::zeros({8, 5}), a, b), ShapeError);
  FloatTensor self = randn({5, 5}, gen);
  CHECK_THROWS_AS(matmul_into(self, self, self), ValueError);
}

TEST_CASE("matmul rejects bad ranks and shapes with both shapes named", "[matmul]") {
  const FloatTensor a = FloatTensor::zeros({2, 3}), b = FloatTensor::zeros({4, 5});
  CHECK_THROWS_WITH(matmul(a, b), Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]") &&
                                      Catch::Contains("3 columns vs 4 rows"));
  CHECK_THROWS_AS(matmul(FloatTensor::zeros({3}), a), ShapeError);
  CHECK(matmul(FloatTensor::zeros({0, 3}), FloatTensor::zeros({3, 4})).shape() == Shape{0, 4});
  const FloatTensor k0 = matmul(FloatTensor::zeros({2, 0}), FloatTensor::zeros({0, 3}));
  CHECK(k0.to_vector() == std::vector<float>(6, 0.0f));
}

TEST_CASE("gemm checks its arguments", "[matmul]") {
  float a[4] = {}, b[4] = {}, c[4] = {};
  CHECK_THROWS_AS(kernels::gemm(false, false, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2), ShapeError);
  CHECK_THROWS_WITH(kernels::gemm(false, false, 2, 2, 2, 1, a, 1, b, 2, 0, c, 2),
                    Catch::Contains("lda=1"));
  CHECK(!kernels::gemm_backend().empty());
}

namespace {

// Random operands stored as the flags say, with leading dimensions wider than the rows. Where
// beta = 0, C starts as NaN: a GEMM must not read it.
struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C;
};

Operands make_operands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float beta) {
  std::mt19937 rng(static_cast<unsigned>(M * 131 + N * 17 + K * 7 + ta * 2 + tb));
  std::normal_distribution<float> nd;
  Operands o{(ta ? M : K) + 3, (tb ? K : N) + 5, N + 2, {}, {}, {}};
  o.A.resize(static_cast<size_t>((ta ? K : M) * o.lda));
  o.B.resize(static_cast<size_t>((tb ? N : K) * o.ldb));
  o.C.resize(static_cast<size_t>(M * o.ldc));
  for (float& x : o.A) x = nd(rng);
  for (float& x : o.B) x = nd(rng);
  for (float& x : o.C) x = beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : nd(rng);
  return o;
}

// Checks C (computed) against want to f32 summation error, and that the columns beyond N in each
// row of C were left alone.
void check_result(const Operands& o, const std::vector<float>& want, int64_t M, int64_t N,
                  int64_t K, float beta) {
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const float got = o.C[static_cast<size_t>(i * o.ldc + j)];
      const float ref = want[static_cast<size_t>(i * o.ldc + j)];
      // f32 sums of K products of size ~1: error ~ K * 2^-24 * sqrt(K), generously bounded.
      worst = std::max(worst, std::abs(double{got} - double{ref}) / (1.0 + std::sqrt(double(K))));
    }
  CHECK(worst < 1e-5);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < o.ldc; ++j)
      CHECK(std::isnan(o.C[static_cast<size_t>(i * o.ldc + j)]) == (beta == 0.0f));
}

// Runs gemm_bf16 and its scalar twin and checks that they agree.
void check_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  Operands o = make_operands(ta, tb, M, N, K, beta);
  std::vector<float> want = o.C;
  kernels::gemm_bf16(ta, tb, M, N, K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, o.C.data(),
                     o.ldc);
  kernels::ref::gemm_bf16(ta, tb, M, N, K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta,
                          want.data(), o.ldc);
  INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K);
  check_result(o, want, M, N, K, beta);
}

// Runs gemm (f32) and a plain loop summing in double, and checks that they agree.
void check_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  Operands o = make_operands(ta, tb, M, N, K, beta);
  std::vector<float> want = o.C;
  kernels::gemm(ta, tb, M, N, K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, o.C.data(),
                o.ldc);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a =
            ta ? o.A[static_cast<size_t>(k * o.lda + i)] : o.A[static_cast<size_t>(i * o.lda + k)];
        const float b =
            tb ? o.B[static_cast<size_t>(j * o.ldb + k)] : o.B[static_cast<size_t>(k * o.ldb + j)];
        sum += double{a} * double{b};
      }
      float& w = want[static_cast<size_t>(i * o.ldc + j)];
      w = static_cast<float>(alpha * sum + (beta == 0.0f ? 0.0 : double{beta} * double{w}));
    }
  INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K);
  check_result(o, want, M, N, K, beta);
}

// Runs gemm (f32) on scholar's own kernel and its scalar twin, and checks that they agree bit for
// bit (and that the columns beyond N were left alone).
void check_f32_twin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  Operands o = make_operands(ta, tb, M, N, K, beta);
  std::vector<float> want = o.C;
  kernels::gemm(ta, tb, M, N, K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta, o.C.data(),
                o.ldc);
  kernels::ref::gemm_f32(ta, tb, M, N, K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta,
                         want.data(), o.ldc);
  INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K);
  int64_t differ = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const size_t at = static_cast<size_t>(i * o.ldc + j);
      differ += o.C[at] != want[at];
    }
  CHECK(differ == 0);
  check_result(o, want, M, N, K, beta);
}

}  // namespace

TEST_CASE("gemm_bf16 agrees with its scalar twin on every layout and edge", "[matmul][bf16]") {
  // Every engine this machine has: AMX tiles and vdpbf16ps where the CPU offers them (the
  // reference alone elsewhere, which then checks only the plumbing).
  for (bool amx : {true, false}) {
    kernels::set_amx_enabled(amx);
    if (!amx && !kernels::has_bf16_gemm()) break;
    INFO("engine: " << kernels::bf16_gemm_engine());
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // Edges of both kernels' blocks: 14 x 32 micro-tiles (vdpbf16ps), 16 x 16 tiles in 32 x 32
      // blocks and chunks of 32 k (AMX).
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int64_t M : {1, 13, 14, 16, 17, 29, 33})
            for (int64_t N : {1, 16, 17, 31, 33})
              for (int64_t K : {1, 2, 7, 32, 33, 300}) check_bf16(ta, tb, M, N, K, 1.0f, 0.0f);
      // alpha and beta; sizes that cross the K, M and N blocks and split over two threads.
      check_bf16(false, true, 200, 1600, 520, 0.5f, 0.25f);
      check_bf16(true, false, 300, 70, 600, -2.0f, 1.0f);
      check_bf16(true, true, 130, 1100, 1030, 1.0f, 1.0f);
      // One block of rows split over the threads by columns; several column blocks.
      check_bf16(false, false, 40, 3000, 100, 1.0f, 0.5f);
      check_bf16(true, true, 300, 2100, 40, 2.0f, 0.0f);
    }
  }
  kernels::set_amx_enabled(true);
  set_num_threads(1);
}

TEST_CASE("gemm in f32 agrees with a plain loop on every engine, layout and edge", "[matmul]") {
  // scholar's own kernel for the active kernel table (AVX-512 or AVX2) where the CPU has it, and
  // the build's BLAS.
  for (bool own : {true, false}) {
    kernels::set_own_f32_gemm(own);
    INFO("engine: " << kernels::gemm_backend());
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // Edges of the micro-tiles (8 x 48 and 6 x 64 with AVX-512, 6 x 16 with AVX2) and of the
      // packed blocks (K in blocks of at most 384); products thinner than 16 rows or columns run
      // on the BLAS.
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int64_t M : {1, 16, 17, 28, 29})
            for (int64_t N : {1, 16, 17, 31, 33, 47, 49, 64})
              for (int64_t K : {1, 7, 16, 17, 385}) check_f32(ta, tb, M, N, K, 1.0f, 0.0f);
      // alpha and beta; sizes that cross the K, M and N blocks and split over two threads.
      check_f32(false, true, 250, 1700, 400, 0.5f, 0.25f);
      check_f32(true, false, 300, 70, 800, -2.0f, 1.0f);
      check_f32(true, true, 130, 1100, 1030, 1.0f, 1.0f);
      check_f32(false, false, 60, 1600, 90, 1.0f, -1.0f);
    }
  }
  kernels::set_own_f32_gemm(true);
  set_num_threads(1);
  // K = 0: C = beta C, and beta = 0 clears it (even NaN).
  float a[1] = {}, b[1] = {}, c[4] = {1, 2, std::numeric_limits<float>::quiet_NaN(), 4};
  kernels::gemm(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 2);
  CHECK(c[0] == 0.5f);
  CHECK(c[3] == 2.0f);
  kernels::gemm(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.0f, c, 2);
  for (float v : c) CHECK(v == 0.0f);
}

TEST_CASE("scholar's own f32 kernels equal their scalar twin bit for bit", "[matmul]") {
  // Each SIMD engine this CPU can run (AVX2's 6 x 16 tile; AVX-512's 8 x 48 tile, and its 6 x 64
  // one, which runs where it pads less: N = 63, 64 and, from 17 rows, 127), through gemm();
  // products of at least 16 rows and columns, as thinner ones run on the BLAS.
  const kernels::Isa before = kernels::active().isa;
  int engines = 0;
  for (kernels::Isa isa : {kernels::Isa::avx2, kernels::Isa::avx512}) {
    if (kernels::table_for(isa) == nullptr) continue;
    kernels::set_isa(isa);
    kernels::set_own_f32_gemm(true);
    if (!kernels::has_own_f32_gemm()) continue;
    ++engines;
    INFO("engine: " << kernels::gemm_backend());
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // Edges of both micro-tiles; K in one block, in two blocks of 193 and in three.
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int64_t M : {16, 17, 29, 31})
            for (int64_t N : {16, 17, 33, 47, 49, 63, 64, 96, 127})
              for (int64_t K : {1, 17, 385, 800}) check_f32_twin(ta, tb, M, N, K, 1.0f, 0.0f);
      // alpha and beta; sizes that cross the M and N blocks and split over two threads.
      check_f32_twin(false, true, 250, 1700, 400, 0.5f, 0.25f);
      check_f32_twin(true, false, 300, 70, 800, -2.0f, 1.0f);
      check_f32_twin(true, true, 130, 800, 1030, 1.0f, 1.0f);
      check_f32_twin(false, false, 60, 1600, 90, 1.0f, -1.0f);
      // More rows than one packed op(A) holds (2^20 values: about 2,730 rows at depth 384), on one
      // thread, so that op(A) is packed in two chunks.
      if (threads == 1) {
        check_f32_twin(false, true, 2800, 40, 384, 1.0f, 0.5f);
        check_f32_twin(true, false, 2800, 17, 384, 1.0f, 0.0f);
      }
    }
  }
  kernels::set_isa(before);
  set_num_threads(1);
  // The twin itself: K = 0 scales C.
  float a[1] = {}, b[1] = {}, c[2] = {2, std::numeric_limits<float>::quiet_NaN()};
  kernels::ref::gemm_f32(false, false, 1, 1, 0, 1.0f, a, 1, b, 1, 0.5f, c, 2);
  CHECK(c[0] == 1.0f);
  kernels::ref::gemm_f32(false, false, 1, 2, 0, 1.0f, a, 1, b, 2, 0.0f, c, 2);
  CHECK((c[0] == 0.0f && c[1] == 0.0f));
  if (kernels::best_isa() == kernels::Isa::scalar) CHECK(engines == 0);
}

TEST_CASE("engine switches read their variable once and reject other values", "[matmul]") {
  // The mechanism behind SCHOLAR_AMX and SCHOLAR_F32_GEMM, on a variable of its own.
  using kernels::detail::RuntimeSwitch;
  const char* name = "SCHOLAR_TEST_ENGINE_SWITCH";
  ::unsetenv(name);
  CHECK(RuntimeSwitch(name, "own", "blas").on());           // unset: on
  CHECK(!RuntimeSwitch(name, "own", "blas").on_or(false));  // ... or as the caller says
  {
    RuntimeSwitch s(name, "own", "blas");
    s.set(true);
    CHECK(s.on_or(false));
  }
  for (const char* off : {"blas", "0"}) {
    ::setenv(name, off, 1);
    RuntimeSwitch s(name, "own", "blas");
    CHECK(!s.on());
    ::setenv(name, "own", 1);
    CHECK(!s.on());  // read once
    CHECK(!s.on_or(true));
    s.set(true);
    CHECK(s.on());
  }
  ::setenv(name, "fast", 1);
  RuntimeSwitch bad(name, "own", "blas");
  CHECK_THROWS_WITH(bad.on(), Catch::Contains("SCHOLAR_TEST_ENGINE_SWITCH='fast'") &&
                                  Catch::Contains("expected own, blas, 1 or 0"));
  bad.set(false);  // a setting from code needs no variable
  CHECK(!bad.on());
  ::unsetenv(name);
}

TEST_CASE("gemm_backend says what gemm runs in f32", "[matmul]") {
  const std::string backend = kernels::gemm_backend();
  const bool avx2 = kernels::active().isa == kernels::Isa::avx2;
  CHECK(backend == (!kernels::has_own_f32_gemm() ? kernels::blas_name()
                    : avx2                       ? "scholar AVX2 (6x16 micro-tile)"
                                                 : "scholar AVX-512 (8x48, 6x64 micro-tiles)"));
  kernels::set_own_f32_gemm(false);
  CHECK(!kernels::has_own_f32_gemm());
  CHECK(kernels::gemm_backend() == kernels::blas_name());
  kernels::set_own_f32_gemm(true);
}

TEST_CASE("gemm_bf16_packed equals gemm_bf16 on AMX bit for bit", "[matmul][bf16]") {
  if (!kernels::has_amx_bf16()) {
    CHECK_THROWS_WITH(kernels::pack_bf16_b(false, 2, 2, nullptr, 2), Catch::Contains("no AMX"));
    return;
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    // K in one and in two blocks (of at most 512), N in one and two column blocks (1,024), edges of
    // the 32 x 32 micro-block; op(A) plain and transposed; op(B) from W (trans_b) and from B.
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (auto [M, N, K] : {std::array<int64_t, 3>{1, 1, 1},
                               {33, 17, 31},
                               {200, 70, 520},
                               {64, 1100, 384},
                               {300, 48, 1030}}) {
          Operands o = make_operands(ta, tb, M, N, K, 0.5f);
          std::vector<float> want = o.C;
          kernels::gemm_bf16(ta, tb, M, N, K, 0.75f, o.A.data(), o.lda, o.B.data(), o.ldb, 0.5f,
                             want.data(), o.ldc);
          const kernels::PackedBf16B p = kernels::pack_bf16_b(tb, K, N, o.B.data(), o.ldb);
          CHECK((p.rows() == K && p.cols() == N && !p.empty() && p.bytes() >= size_t(K * N * 2)));
          kernels::gemm_bf16_packed(ta, M, 0.75f, o.A.data(), o.lda, p, 0.5f, o.C.data(), o.ldc);
          INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K);
          CHECK(o.C == want);
        }
  }
  set_num_threads(1);
  float x[4] = {};
  CHECK_THROWS_AS(kernels::pack_bf16_b(false, -1, 2, x, 2), ShapeError);
  CHECK_THROWS_AS(kernels::pack_bf16_b(false, 2, 2, x, 1), ShapeError);
  CHECK_THROWS_AS(
      kernels::gemm_bf16_packed(false, 2, 1.0f, x, 2, kernels::PackedBf16B(), 0.0f, x, 2),
      ValueError);
  const kernels::PackedBf16B p = kernels::pack_bf16_b(false, 2, 2, x, 2);
  kernels::set_amx_enabled(false);
  CHECK_THROWS_WITH(kernels::gemm_bf16_packed(false, 2, 1.0f, x, 2, p, 0.0f, x, 2),
                    Catch::Contains("AMX bf16 tiles are not available"));
  kernels::set_amx_enabled(true);
}

TEST_CASE("bf16_gemm_engine says what gemm_bf16 runs on", "[matmul][bf16]") {
  const std::string_view engine = kernels::bf16_gemm_engine();
  CHECK(engine == (kernels::has_amx_bf16()    ? "AMX"
                   : kernels::has_bf16_gemm() ? "AVX512_BF16"
                                              : "reference"));
  if (kernels::has_amx_bf16()) {
    kernels::set_amx_enabled(false);
    CHECK(kernels::bf16_gemm_engine() == "AVX512_BF16");
    CHECK(!kernels::has_amx_bf16());
    kernels::set_amx_enabled(true);
  }
  // AMX needs AVX512_BF16's kernel table: never AMX without it.
  CHECK((!kernels::has_amx_bf16() || kernels::has_bf16_gemm()));
}

TEST_CASE("gemm_bf16 rounds each operand to bf16 once", "[matmul][bf16]") {
  // 1 + 2^-9 rounds to 1 in bf16 (8 significant bits), so the product of two of them is exactly 1
  // in bf16 arithmetic and (1 + 2^-9)^2 in f32.
  const float x = 1.0f + 0x1p-9f;
  float a[4] = {x, x, x, x}, b[4] = {x, x, x, x}, c[4] = {};
  for (bool amx : {true, false}) {
    kernels::set_amx_enabled(amx);
    INFO("engine: " << kernels::bf16_gemm_engine());
    kernels::gemm_bf16(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    for (float v : c) CHECK(v == 2.0f);
  }
  kernels::set_amx_enabled(true);
  CHECK_THROWS_WITH(kernels::gemm_bf16(false, false, 2, 2, 2, 1, a, 1, b, 2, 0, c, 2),
                    Catch::Contains("gemm_bf16") && Catch::Contains("lda=1"));
  // K = 0: C = beta C, and beta = 0 clears it.
  float d[4] = {1, 2, 3, 4};
  kernels::gemm_bf16(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, d, 2);
  CHECK(d[3] == 2.0f);
  kernels::gemm_bf16(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.0f, d, 2);
  CHECK(d[0] == 0.0f);
}

TEST_CASE("set_matmul_precision routes gemm to bf16 where the CPU has it", "[matmul][bf16]") {
  REQUIRE(kernels::matmul_precision() == kernels::MatmulPrecision::f32);
  Generator g(3);
  const FloatTensor a = randn({40, 50}, g), b = randn({50, 30}, g), v = randn({1, 50}, g);
  const FloatTensor f32 = matmul(a, b), f32_row = matmul(v, b);
  std::vector<float> bf(40 * 30);
  kernels::gemm_bf16(false, false, 40, 30, 50, 1.0f, a.data(), 50, b.data(), 30, 0.0f, bf.data(),
                     30);
  kernels::set_matmul_precision(kernels::MatmulPrecision::bf16);
  const FloatTensor mixed = matmul(a, b), mixed_row = matmul(v, b);
  const auto effective = kernels::effective_matmul_precision();
  kernels::set_matmul_precision(kernels::MatmulPrecision::f32);
  CHECK(effective == (kernels::has_bf16_gemm() ? kernels::MatmulPrecision::bf16
                                               : kernels::MatmulPrecision::f32));
  if (kernels::has_bf16_gemm())
    CHECK(mixed.to_vector() == bf);
  else
    CHECK(mixed.to_vector() == f32.to_vector());
  // A single row is a matrix-vector product: it stays f32.
  CHECK(mixed_row.to_vector() == f32_row.to_vector());
  CHECK(kernels::matmul_precision_name(kernels::MatmulPrecision::bf16) == "bf16");
}
