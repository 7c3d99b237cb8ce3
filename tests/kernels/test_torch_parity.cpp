// scholar's kernels and tensor ops against PyTorch 1.13 on the same numbers. The fixture comes from
// tests/reference/make_kernel_fixtures.py (Debian's python3-torch).
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "scholar/io/safetensors.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/tensor/ops.hpp"
#include "support.hpp"

using namespace scholar;
using kernels::KernelTable;

namespace {

const io::SafetensorsFile& fixture() {
  static const io::SafetensorsFile f =
      io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/kernels_torch.safetensors");
  return f;
}

std::vector<float> get(const std::string& name) {
  return fixture().load<float>(name).to_vector();
}

}  // namespace

TEST_CASE("softmax and log-softmax agree with torch", "[torch][kernels]") {
  const auto x = get("softmax.x"), y = get("softmax.y"), ly = get("log_softmax.y");
  for (const KernelTable* t : test::all_tables()) {
    std::vector<float> got(x.size());
    for (size_t r = 0; r < 4; ++r) t->softmax(got.data() + r * 96, x.data() + r * 96, 96);
    test::check_close(got, y, 1e-5, 1e-7, "softmax " + std::string(kernels::isa_name(t->isa)));
    for (size_t r = 0; r < 4; ++r) t->log_softmax(got.data() + r * 96, x.data() + r * 96, 96);
    test::check_close(got, ly, 1e-5, 1e-5, "log_softmax " + std::string(kernels::isa_name(t->isa)));
  }
}

TEST_CASE("layernorm and rmsnorm forward and backward agree with torch", "[torch][kernels]") {
  const auto x = get("ln.x"), w = get("ln.w"), b = get("ln.b"), dout = get("ln.dout");
  const auto rx = get("rms.x"), rw = get("rms.w");
  for (const KernelTable* t : test::all_tables()) {
    const std::string isa(kernels::isa_name(t->isa));
    std::vector<float> y(x.size()), dx(x.size(), 0.0f), dw(96, 0.0f), db(96, 0.0f);
    for (size_t r = 0; r < 4; ++r) {
      float mean, rstd;
      t->layernorm_forward(&y[r * 96], &mean, &rstd, &x[r * 96], w.data(), b.data(), 96, 1e-5f);
      t->layernorm_backward(&dx[r * 96], dw.data(), db.data(), &dout[r * 96], &x[r * 96], w.data(),
                            mean, rstd, 96);
    }
    test::check_close(y, get("ln.y"), 1e-5, 1e-5, "layernorm y " + isa);
    test::check_close(dx, get("ln.dx"), 1e-4, 1e-5, "layernorm dx " + isa);
    test::check_close(dw, get("ln.dw"), 1e-4, 1e-5, "layernorm dw " + isa);
    test::check_close(db, get("ln.db"), 1e-5, 1e-6, "layernorm db " + isa);

    std::fill(dx.begin(), dx.end(), 0.0f);
    std::fill(dw.begin(), dw.end(), 0.0f);
    for (size_t r = 0; r < 4; ++r) {
      float rstd;
      t->rmsnorm_forward(&y[r * 96], &rstd, &rx[r * 96], rw.data(), 96, 1e-6f);
      t->rmsnorm_backward(&dx[r * 96], dw.data(), &dout[r * 96], &rx[r * 96], rw.data(), rstd, 96);
    }
    test::check_close(y, get("rms.y"), 1e-5, 1e-6, "rmsnorm y " + isa);
    test::check_close(dx, get("rms.dx"), 1e-4, 1e-5, "rmsnorm dx " + isa);
    test::check_close(dw, get("rms.dw"), 1e-4, 1e-5, "rmsnorm dw " + isa);
  }
}

TEST_CASE("GELU, SiLU and SwiGLU agree with torch", "[torch][kernels]") {
  const auto x = get("act.x"), g = get("act.dout");
  const auto gate = get("swiglu.gate"), up = get("swiglu.up");
  const size_t n = x.size();
  for (const KernelTable* t : test::all_tables()) {
    const std::string isa(kernels::isa_name(t->isa));
    std::vector<float> y(n), dx(n, 0.0f), du(n, 0.0f);
    t->gelu_forward(y.data(), x.data(), n);
    test::check_close(y, get("gelu.y"), 1e-5, 1e-6, "gelu " + isa);
    t->gelu_backward(dx.data(), g.data(), x.data(), n);
    test::check_close(dx, get("gelu.dx"), 1e-5, 1e-6, "gelu dx " + isa);
    std::fill(dx.begin(), dx.end(), 0.0f);
    t->gelu_erf_forward(y.data(), x.data(), n);
    test::check_close(y, get("gelu_erf.y"), 1e-5, 1e-6, "gelu_erf " + isa);
    t->gelu_erf_backward(dx.data(), g.data(), x.data(), n);
    test::check_close(dx, get("gelu_erf.dx"), 1e-5, 1e-6, "gelu_erf dx " + isa);
    std::fill(dx.begin(), dx.end(), 0.0f);
    t->silu_forward(y.data(), x.data(), n);
    test::check_close(y, get("silu.y"), 1e-5, 1e-6, "silu " + isa);
    t->silu_backward(dx.data(), g.data(), x.data(), n);
    test::check_close(dx, get("silu.dx"), 1e-5, 1e-6, "silu dx " + isa);
    std::fill(dx.begin(), dx.end(), 0.0f);
    t->swiglu_forward(y.data(), gate.data(), up.data(), n);
    test::check_close(y, get("swiglu.y"), 1e-5, 1e-6, "swiglu " + isa);
    t->swiglu_backward(dx.data(), du.data(), g.data(), gate.data(), up.data(), n);
    test::check_close(dx, get("swiglu.dgate"), 1e-5, 1e-6, "swiglu dgate " + isa);
    test::check_close(du, get("swiglu.dup"), 1e-5, 1e-6, "swiglu dup " + isa);
  }
}

TEST_CASE("rope agrees with transformers' rotate_half and the interleaved layout",
          "[torch][kernels]") {
  const auto q = get("rope.q"), cos = get("rope.cos"), sin = get("rope.sin");
  const size_t T = 6, H = 2, D = 64, P = D / 2;
  // Our angle table against torch's float32 one.
  std::vector<float> c(P), s(P);
  for (size_t p = 0; p < T; ++p) {
    kernels::rope_angles(c.data(), s.data(), static_cast<double>(p), P, 10000.0);
    test::check_close(c.data(), &cos[p * P], P, 1e-6, 1e-6, "rope cos");
    test::check_close(s.data(), &sin[p * P], P, 1e-6, 1e-6, "rope sin");
  }
  for (const KernelTable* t : test::all_tables()) {
    const std::string isa(kernels::isa_name(t->isa));
    for (auto style : {kernels::RopeStyle::half, kernels::RopeStyle::interleaved}) {
      std::vector<float> out(q.size());
      for (size_t i = 0; i < T; ++i)
        for (size_t h = 0; h < H; ++h)
          t->rope(&out[(i * H + h) * D], &q[(i * H + h) * D], &cos[i * P], &sin[i * P], P, style,
                  false);
      const bool half = style == kernels::RopeStyle::half;
      test::check_close(out, get(half ? "rope.half" : "rope.interleaved"), 1e-5, 1e-6,
                        (half ? "rope half " : "rope interleaved ") + isa);
    }
  }
}

TEST_CASE("matmul agrees with torch", "[torch][tensor]") {
  const auto& f = fixture();
  const FloatTensor c = matmul(f.load<float>("mm.a"), f.load<float>("mm.b"));
  CHECK(allclose(c, f.load<float>("mm.c"), 1e-5, 1e-6));
  const FloatTensor bc = matmul(f.load<float>("bmm.a"), f.load<float>("bmm.b"));
  CHECK(bc.shape() == Shape{2, 3, 5});
  CHECK(allclose(bc, f.load<float>("bmm.c"), 1e-5, 1e-6));
}

TEST_CASE("gemm_bf16 agrees with torch's product of bf16-rounded operands", "[torch][kernels]") {
  const auto& f = fixture();
  const FloatTensor a = f.load<float>("mm_bf16.a"), b = f.load<float>("mm_bf16.b");
  const auto want = f.load<float>("mm_bf16.c").to_vector();
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  for (bool hardware : {true, false}) {
    if (hardware && !kernels::has_bf16_gemm()) continue;
    std::vector<float> c(static_cast<size_t>(M * N), -1.0f);
    if (hardware)
      kernels::gemm_bf16(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
    else
      kernels::ref::gemm_bf16(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(),
                              N);
    for (size_t i = 0; i < c.size(); ++i) CHECK(c[i] == Approx(want[i]).margin(2e-5).epsilon(1e-5));
  }
}

TEST_CASE("bf16 and f16 conversions agree with torch bit for bit", "[torch][kernels]") {
  const auto& f = fixture();
  const auto x = f.load<float>("cvt.x");
  const auto want_bf = f.load<bf16>("cvt.bf16").to_vector();
  const auto want_h = f.load<f16>("cvt.f16").to_vector();
  for (const KernelTable* t : test::all_tables()) {
    const size_t n = static_cast<size_t>(x.numel());
    std::vector<uint16_t> got(n);
    t->f32_to_bf16(got.data(), x.data(), n);
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += got[i] != want_bf[i].bits;
    CHECK(bad == 0);
    t->f32_to_f16(got.data(), x.data(), n);
    bad = 0;
    for (size_t i = 0; i < n; ++i) bad += got[i] != want_h[i].bits;
    CHECK(bad == 0);
  }
  // The Tensor conversion path too.
  const auto via_tensor = x.to<bf16>().to_vector();
  for (size_t i = 0; i < via_tensor.size(); ++i) REQUIRE(via_tensor[i].bits == want_bf[i].bits);
}
