// Quantized blocks and weight-matrix products on every instruction set: the quantizers against
// gguf-py (llama.cpp's reference NumPy implementation, tests/reference/make_quant_fixtures.py) byte
// for byte, the products against their scalar twins.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "scholar/io/safetensors.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "support.hpp"

using namespace scholar;
using kernels::KernelTable;
namespace ref = kernels::ref;

namespace {

std::string isa(const KernelTable* t) {
  return std::string(kernels::isa_name(t->isa));
}

template <class T>
std::vector<T> as_blocks(std::span<const uint8_t> bytes) {
  REQUIRE(bytes.size() % sizeof(T) == 0);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

// Max |got - want| allowed for a dot product whose terms' magnitudes sum to `mass`: float
// accumulation in a different order.
double dot_tol(double mass) {
  return 2e-6 * mass + 1e-6;
}

}  // namespace

TEST_CASE("every kernel table is complete", "[kernels][quant]") {
  // The typed entries are function pointers from `add` up to the per-type rows; none may be left
  // null by a new entry. (table_for() asserts the same before handing a table out.)
  constexpr size_t first = offsetof(KernelTable, add), end = offsetof(KernelTable, weights);
  static_assert((end - first) % sizeof(void (*)()) == 0);
  for (const KernelTable* t : test::all_tables()) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(t);
    for (size_t off = first; off < end; off += sizeof(void (*)())) {
      uintptr_t fn = 0;
      std::memcpy(&fn, bytes + off, sizeof fn);
      INFO(isa(t) << ": entry at byte " << off);
      CHECK(fn != 0);
    }
    // One row per weight type, in the order of kWeightTypes, each able to convert and multiply.
    for (int i = 0; i < kWeightTypeCount; ++i) {
      const kernels::WeightKernels& w = t->weights[static_cast<size_t>(i)];
      INFO(isa(t) << ": " << kWeightTypes[i].name);
      CHECK(w.type == kWeightTypes[i].type);
      CHECK(&t->weight(kWeightTypes[i].type) == &w);
      CHECK((w.to_f32 && w.from_f32 && w.gemv));
      CHECK((w.repack == nullptr) == (w.gemm_packed == nullptr));
      CHECK(w.input_type == (kWeightTypes[i].quantized ? WeightType::q8_0 : WeightType::f32));
    }
  }
}

TEST_CASE("the weight type table agrees with ggml and safetensors", "[kernels][quant]") {
  // ggml's numbers and sizes (ggml.h, ggml.c type_traits), llama.cpp's file types (llama.h).
  for (const auto& row : kWeightTypes) {
    INFO(row.name);
    CHECK(weight_type_from_ggml(static_cast<uint32_t>(row.type)) == row.type);
    CHECK(parse_weight_type(row.name) == row.type);
    CHECK(parse_weight_type(row.ggml_name) == row.type);
    CHECK(weight_type_name(row.type) == row.name);
    CHECK(row_bytes(row.type, 64) == static_cast<size_t>(64 / row.block_values) * row.block_bytes);
  }
  CHECK(weight_type_from_ggml(0) == WeightType::f32);
  CHECK(weight_type_from_ggml(1) == WeightType::f16);
  CHECK(weight_type_from_ggml(2) == WeightType::q4_0);
  CHECK(weight_type_from_ggml(8) == WeightType::q8_0);
  CHECK(weight_type_from_ggml(30) == WeightType::bf16);
  CHECK_FALSE(weight_type_from_ggml(12).has_value());  // Q4_K: not (yet) read
  CHECK(row_bytes(WeightType::q8_0, 64) == 68);
  CHECK(row_bytes(WeightType::q4_0, 64) == 36);
  CHECK(row_bytes(WeightType::bf16, 3) == 6);
  CHECK(weight_type_info(WeightType::q8_0).gguf_file_type == 7);   // LLAMA_FTYPE_MOSTLY_Q8_0
  CHECK(weight_type_info(WeightType::bf16).gguf_file_type == 32);  // LLAMA_FTYPE_MOSTLY_BF16
  CHECK(weight_type_from_safetensors("BF16") == WeightType::bf16);
  CHECK_FALSE(weight_type_from_safetensors("F64").has_value());
  CHECK_FALSE(parse_weight_type("q4_k").has_value());
}

TEST_CASE("Q8_0 and Q4_0 quantizers match gguf-py byte for byte", "[kernels][quant]") {
  const auto f = io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/quant_ggml.safetensors");
  const std::vector<float> x = f.load<float>("x").to_vector();
  const size_t n = x.size();
  REQUIRE(n % kQuantBlock == 0);
  const auto q8 = as_blocks<BlockQ8_0>(f.bytes("q8_0"));
  const auto q4 = as_blocks<BlockQ4_0>(f.bytes("q4_0"));
  const std::vector<float> dq8 = f.load<float>("dequant_q8_0").to_vector();
  const std::vector<float> dq4 = f.load<float>("dequant_q4_0").to_vector();
  for (const KernelTable* t : test::all_tables()) {
    INFO(isa(t));
    std::vector<BlockQ8_0> g8(n / kQuantBlock);
    std::vector<BlockQ4_0> g4(n / kQuantBlock);
    t->quantize_q8_0(g8.data(), x.data(), n);
    t->quantize_q4_0(g4.data(), x.data(), n);
    for (size_t b = 0; b < g8.size(); ++b) {
      INFO("block " << b);
      CHECK(std::memcmp(&g8[b], &q8[b], sizeof(BlockQ8_0)) == 0);
      CHECK(std::memcmp(&g4[b], &q4[b], sizeof(BlockQ4_0)) == 0);
    }
    std::vector<float> back(n);
    t->dequantize_q8_0(back.data(), q8.data(), n);
    test::check_close(back, dq8, 0, 0, "dequantize_q8_0 " + isa(t));
    t->dequantize_q4_0(back.data(), q4.data(), n);
    test::check_close(back, dq4, 0, 0, "dequantize_q4_0 " + isa(t));
  }
}

TEST_CASE("quantizers: rounding, NaN and the error bound", "[kernels][quant]") {
  std::mt19937 rng(7);
  std::vector<float> x(256);
  test::fill_uniform(x.data(), x.size(), rng, -2, 2);
  x[3] = std::nanf("");
  for (const KernelTable* t : test::all_tables()) {
    INFO(isa(t));
    std::vector<BlockQ8_0> q8(8), want8(8);
    t->quantize_q8_0(q8.data(), x.data(), x.size());
    ref::quantize_q8_0(want8.data(), x.data(), x.size());
    CHECK(std::memcmp(q8.data(), want8.data(), 8 * sizeof(BlockQ8_0)) == 0);
    CHECK(q8[0].qs[3] == 0);  // NaN quantizes to 0
    std::vector<float> back(256);
    t->dequantize_q8_0(back.data(), q8.data(), back.size());
    for (size_t i = 0; i < x.size(); ++i) {
      if (i == 3) continue;
      const float d = static_cast<float>(f16::from_bits(q8[i / 32].d));
      // Half a step, plus the f16 rounding of d (relative 2^-11) times |q| <= 127.
      CHECK(std::fabs(back[i] - x[i]) <= 0.5f * d + 127.0f / 2048.0f * d);
    }
  }
}

TEST_CASE("weight-matrix products match the scalar twin", "[kernels][quant]") {
  std::mt19937 rng(11);
  const size_t ns[] = {32, 64, 96, 800};
  for (const KernelTable* t : test::all_tables())
    for (size_t n : ns)
      for (size_t rows : {1, 3, 4, 5, 9, 13}) {
        INFO(isa(t) << " rows=" << rows << " n=" << n);
        std::vector<float> Wf(rows * n), x(n);
        test::fill_uniform(Wf.data(), Wf.size(), rng, -1, 1);
        test::fill_uniform(x.data(), x.size(), rng, -1, 1);
        double mass = 0;  // sum |w x| over a row, bounding the accumulation error
        for (size_t i = 0; i < n; ++i) mass += std::fabs(x[i]);
        std::vector<float> got(rows), want(rows);

        t->gemv_f32(got.data(), Wf.data(), x.data(), rows, n);
        ref::gemv_f32(want.data(), Wf.data(), x.data(), rows, n);
        test::check_close(got, want, 0, dot_tol(mass), "gemv_f32");

        std::vector<uint16_t> Wh(Wf.size()), Wb(Wf.size());
        ref::f32_to_f16(Wh.data(), Wf.data(), Wf.size());
        ref::f32_to_bf16(Wb.data(), Wf.data(), Wf.size());
        t->gemv_f16(got.data(), Wh.data(), x.data(), rows, n);
        ref::gemv_f16(want.data(), Wh.data(), x.data(), rows, n);
        test::check_close(got, want, 0, dot_tol(mass), "gemv_f16");
        t->gemv_bf16(got.data(), Wb.data(), x.data(), rows, n);
        ref::gemv_bf16(want.data(), Wb.data(), x.data(), rows, n);
        test::check_close(got, want, 0, dot_tol(mass), "gemv_bf16");

        const size_t nb = n / kQuantBlock;
        std::vector<BlockQ8_0> W8(rows * nb), x8(nb);
        std::vector<BlockQ4_0> W4(rows * nb);
        ref::quantize_q8_0(W8.data(), Wf.data(), Wf.size());
        ref::quantize_q4_0(W4.data(), Wf.data(), Wf.size());
        ref::quantize_q8_0(x8.data(), x.data(), n);
        t->gemv_q8_0(got.data(), W8.data(), x8.data(), rows, n);
        ref::gemv_q8_0(want.data(), W8.data(), x8.data(), rows, n);
        test::check_close(got, want, 0, dot_tol(mass), "gemv_q8_0");
        t->gemv_q4_0(got.data(), W4.data(), x8.data(), rows, n);
        ref::gemv_q4_0(want.data(), W4.data(), x8.data(), rows, n);
        test::check_close(got, want, 0, dot_tol(mass), "gemv_q4_0");

        // The quantized product approximates the float one within the quantization error.
        ref::gemv_f32(want.data(), Wf.data(), x.data(), rows, n);
        t->gemv_q8_0(got.data(), W8.data(), x8.data(), rows, n);
        test::check_close(got, want, 0, 0.02 * mass, "gemv_q8_0 vs f32");
      }
}

TEST_CASE("quantized GEMM equals one GEMV per input", "[kernels][quant]") {
  std::mt19937 rng(13);
  const size_t rows = 70, n = 96, T = 5, ldy = 75, nb = n / kQuantBlock;
  std::vector<float> Wf(rows * n), X(T * n);
  test::fill_uniform(Wf.data(), Wf.size(), rng, -1, 1);
  test::fill_uniform(X.data(), X.size(), rng, -1, 1);
  std::vector<BlockQ8_0> W8(rows * nb), X8(T * nb);
  std::vector<BlockQ4_0> W4(rows * nb);
  ref::quantize_q8_0(W8.data(), Wf.data(), Wf.size());
  ref::quantize_q4_0(W4.data(), Wf.data(), Wf.size());
  ref::quantize_q8_0(X8.data(), X.data(), X.size());
  for (const KernelTable* t : test::all_tables()) {
    INFO(isa(t));
    std::vector<float> Y(T * ldy, -1.0f), y(rows);
    t->gemm_q8_0(Y.data(), ldy, W8.data(), X8.data(), rows, T, n);
    for (size_t i = 0; i < T; ++i) {
      t->gemv_q8_0(y.data(), W8.data(), X8.data() + i * nb, rows, n);
      test::check_close(Y.data() + i * ldy, y.data(), rows, 0, 0, "gemm_q8_0");
      CHECK(Y[i * ldy + rows] == -1.0f);  // the padding past `rows` is untouched
    }
    t->gemm_q4_0(Y.data(), ldy, W4.data(), X8.data(), rows, T, n);
    for (size_t i = 0; i < T; ++i) {
      t->gemv_q4_0(y.data(), W4.data(), X8.data() + i * nb, rows, n);
      test::check_close(Y.data() + i * ldy, y.data(), rows, 0, 0, "gemm_q4_0");
    }
  }
}

TEST_CASE("interleaved eight-row products equal the plain ones", "[kernels][quant]") {
  std::mt19937 rng(17);
  for (size_t n : {32, 64, 96, 800})
    for (size_t T : {1, 3, 4, 5, 9}) {
      const size_t rows = 24, ldy = 27, nb = n / kQuantBlock;
      INFO("n=" << n << " T=" << T);
      std::vector<float> Wf(rows * n), X(T * n);
      test::fill_uniform(Wf.data(), Wf.size(), rng, -1, 1);
      test::fill_uniform(X.data(), X.size(), rng, -1, 1);
      std::vector<BlockQ8_0> W8(rows * nb), X8(T * nb);
      std::vector<BlockQ4_0> W4(rows * nb);
      ref::quantize_q8_0(W8.data(), Wf.data(), Wf.size());
      ref::quantize_q4_0(W4.data(), Wf.data(), Wf.size());
      ref::quantize_q8_0(X8.data(), X.data(), X.size());
      std::vector<BlockQ8_0x8> R8(rows / 8 * nb);
      std::vector<BlockQ4_0x8> R4(rows / 8 * nb);
      repack_x8(R8.data(), W8.data(), rows, n);
      repack_x8(R4.data(), W4.data(), rows, n);
      double mass = 0;
      for (size_t i = 0; i < n; ++i) mass += 1.0;  // |x| <= 1, |w| <= 1
      std::vector<float> want(T * ldy), got(T * ldy, -1.0f);
      ref::gemm_q8_0(want.data(), ldy, W8.data(), X8.data(), rows, T, n);
      for (const KernelTable* t : test::all_tables()) {
        INFO(isa(t));
        t->gemm_q8_0_x8(got.data(), ldy, R8.data(), X8.data(), rows, T, n);
        for (size_t i = 0; i < T; ++i) {
          test::check_close(got.data() + i * ldy, want.data() + i * ldy, rows, 0, dot_tol(mass),
                            "gemm_q8_0_x8");
          CHECK(got[i * ldy + rows] == -1.0f);
        }
      }
      ref::gemm_q4_0(want.data(), ldy, W4.data(), X8.data(), rows, T, n);
      for (const KernelTable* t : test::all_tables()) {
        INFO(isa(t));
        t->gemm_q4_0_x8(got.data(), ldy, R4.data(), X8.data(), rows, T, n);
        for (size_t i = 0; i < T; ++i)
          test::check_close(got.data() + i * ldy, want.data() + i * ldy, rows, 0, dot_tol(mass),
                            "gemm_q4_0_x8");
      }
    }
}
