// Chooses the kernel table once per process from the CPU's features (or SCHOLAR_ISA).
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "kernels/runtime_switch.hpp"
#include "scholar/error.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"

#if defined(SCHOLAR_HAVE_X86_KERNELS)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
// Entry points of the per-ISA kernel objects (src/kernels/kernels_*.cpp).
extern "C" const scholar::kernels::KernelTable* scholar_kernel_table_avx2();
extern "C" const scholar::kernels::KernelTable* scholar_kernel_table_avx512();
extern "C" const scholar::kernels::KernelTable* scholar_kernel_table_avx512vnni();
#endif

namespace scholar::kernels {

namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512cd = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false;
  bool amx_tile = false, amx_bf16 = false;
  bool os_avx = false, os_avx512 = false;  // the OS saves the wider registers on context switch
  bool os_amx = false;                     // ... and the tile configuration and data
  std::string names;
};

CpuFeatures detect() {
  CpuFeatures f;
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.os_avx = (lo & 0x6) == 0x6;
    f.os_avx512 = (lo & 0xe6) == 0xe6;
    f.os_amx = ((lo >> 17) & 3) == 3;  // XTILECFG and XTILEDATA
  }
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  f.avx512f = (b >> 16) & 1;
  f.avx512dq = (b >> 17) & 1;
  f.avx512cd = (b >> 28) & 1;
  f.avx512bw = (b >> 30) & 1;
  f.avx512vl = (b >> 31) & 1;
  f.avx512_vnni = (c >> 11) & 1;
  f.amx_bf16 = (d >> 22) & 1;
  f.amx_tile = (d >> 24) & 1;
  const unsigned max_sub = a;
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = (a >> 4) & 1;
    f.avx512_bf16 = (a >> 5) & 1;
  }
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!f.names.empty()) f.names += ' ';
    f.names += name;
  };
  add(f.avx2, "AVX2");
  add(f.fma, "FMA");
  add(f.f16c, "F16C");
  add(f.avx_vnni, "AVX_VNNI");
  add(f.avx512f, "AVX512F");
  add(f.avx512bw, "AVX512BW");
  add(f.avx512dq, "AVX512DQ");
  add(f.avx512vl, "AVX512VL");
  add(f.avx512cd, "AVX512CD");
  add(f.avx512_vnni, "AVX512_VNNI");
  add(f.avx512_bf16, "AVX512_BF16");
  add(f.amx_tile, "AMX_TILE");
  add(f.amx_bf16, "AMX_BF16");
  if (f.names.empty()) f.names = "none";
#else
  f.names = "none (not x86-64)";
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

bool supported(Isa isa) {
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return f.os_avx && f.avx2 && f.fma && f.f16c;
    case Isa::avx512:
      return f.os_avx512 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx512cd &&
             f.avx2 && f.fma && f.f16c;
    case Isa::avx512_vnni:
      return supported(Isa::avx512) && f.avx512_vnni;
  }
  return false;
}

// Every entry of a table must be set: a designated initializer that forgets one leaves it null, and
// the first call would crash far from the cause. The typed entries run from `add` up to `weights`
// and are all function pointers (keep them so).
void check_complete(const KernelTable& t) {
  using Fn = void (*)();
  constexpr size_t first = offsetof(KernelTable, add), end = offsetof(KernelTable, weights);
  static_assert((end - first) % sizeof(Fn) == 0, "KernelTable entries must be function pointers");
  const auto* bytes = reinterpret_cast<const unsigned char*>(&t);
  for (size_t off = first; off < end; off += sizeof(Fn)) {
    Fn f;
    std::memcpy(&f, bytes + off, sizeof f);
    SCHOLAR_ASSERT(f != nullptr, isa_name(t.isa), " kernel table: entry at byte ", off,
                   " is not set");
  }
  for (int i = 0; i < kWeightTypeCount; ++i) {
    const WeightKernels& w = t.weights[static_cast<size_t>(i)];
    SCHOLAR_ASSERT(w.type == kWeightTypes[i].type, isa_name(t.isa), " weight row ", i);
    SCHOLAR_ASSERT(w.to_f32 && w.from_f32 && w.gemv, isa_name(t.isa), " ", kWeightTypes[i].name,
                   " kernels are not set");
    SCHOLAR_ASSERT((w.repack == nullptr) == (w.gemm_packed == nullptr), isa_name(t.isa), " ",
                   kWeightTypes[i].name, ": repack and gemm_packed come together");
    SCHOLAR_ASSERT(w.input_type == WeightType::f32 || w.input_type == WeightType::q8_0,
                   isa_name(t.isa), " ", kWeightTypes[i].name, ": unsupported input type");
  }
}

std::atomic<const KernelTable*> g_active{nullptr};
std::mutex g_choose_mutex;

const KernelTable& choose() {
  std::lock_guard lock(g_choose_mutex);
  if (const KernelTable* t = g_active.load()) return *t;
  Isa isa = best_isa();
  if (const char* env = std::getenv("SCHOLAR_ISA"); env && *env) {
    isa = parse_isa(env);
    if (!table_for(isa))
      fail<ValueError>("SCHOLAR_ISA=", env,
                       ": this CPU does not support it (CPU features: ", features().names, ")");
  }
  const KernelTable* t = table_for(isa);
  g_active.store(t);
  return *t;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_vnni:
      return "avx512_vnni";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  if (name == "avx512_vnni") return Isa::avx512_vnni;
  fail<ValueError>("unknown instruction set '", name,
                   "': expected scalar, avx2, avx512 or avx512_vnni");
}

namespace {
const KernelTable* table_for_unchecked(Isa isa) {
  if (!supported(isa)) return nullptr;
  switch (isa) {
    case Isa::scalar:
      return &ref::table();
#if defined(SCHOLAR_HAVE_X86_KERNELS)
    case Isa::avx2:
      return scholar_kernel_table_avx2();
    case Isa::avx512:
      return scholar_kernel_table_avx512();
    case Isa::avx512_vnni:
      return scholar_kernel_table_avx512vnni();
#else
    default:
      return nullptr;
#endif
  }
  return nullptr;
}
}  // namespace

const KernelTable* table_for(Isa isa) {
  const KernelTable* t = table_for_unchecked(isa);
  if (t) {
    static std::once_flag checked[4];
    std::call_once(checked[static_cast<int>(isa)], [t] { check_complete(*t); });
  }
  return t;
}

Isa best_isa() {
  if (table_for(Isa::avx512_vnni)) return Isa::avx512_vnni;
  if (table_for(Isa::avx512)) return Isa::avx512;
  if (table_for(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

const KernelTable& active() {
  if (const KernelTable* t = g_active.load(std::memory_order_acquire)) return *t;
  return choose();
}

void set_isa(Isa isa) {
  const KernelTable* t = table_for(isa);
  if (!t)
    fail<ValueError>("set_isa(", isa_name(isa),
                     "): this CPU does not support it (CPU features: ", features().names, ")");
  g_active.store(t, std::memory_order_release);
}

std::string_view cpu_features() {
  return features().names;
}

bool has_bf16_gemm() {
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  const Isa isa = active().isa;
  return features().avx512_bf16 && (isa == Isa::avx512 || isa == Isa::avx512_vnni);
#else
  return false;
#endif
}

namespace {

// Asks Linux for the AMX tile data state (off by default for every process since 5.16, so that
// processes which never use the 8 KiB of tiles do not pay to save them). Once per process; the
// grant covers every thread.
bool amx_permitted() {
#if defined(SCHOLAR_HAVE_X86_KERNELS) && defined(__linux__) && defined(SYS_arch_prctl)
  static const bool granted = [] {
    const CpuFeatures& f = features();
    if (!(f.amx_tile && f.amx_bf16 && f.os_amx)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

detail::RuntimeSwitch g_amx("SCHOLAR_AMX", "on", "off");

}  // namespace

bool has_amx_bf16() {
  return has_bf16_gemm() && g_amx.on() && amx_permitted();
}

void set_amx_enabled(bool enabled) {
  g_amx.set(enabled);
}

std::string_view bf16_gemm_engine() {
  if (has_amx_bf16()) return "AMX";
  if (has_bf16_gemm()) return "AVX512_BF16";
  return "reference";
}

void softmax_rows(float* out, const float* x, size_t rows, size_t cols) {
  const KernelTable& k = active();
  for (size_t r = 0; r < rows; ++r) k.softmax(out + r * cols, x + r * cols, cols);
}

void log_softmax_rows(float* out, const float* x, size_t rows, size_t cols) {
  const KernelTable& k = active();
  for (size_t r = 0; r < rows; ++r) k.log_softmax(out + r * cols, x + r * cols, cols);
}

void rope_angles(float* cos, float* sin, double pos, size_t n_pairs, double theta_base,
                 const float* freq_factors) {
  const double dim = 2.0 * static_cast<double>(n_pairs);
  for (size_t p = 0; p < n_pairs; ++p) {
    double inv_freq = std::pow(theta_base, -2.0 * static_cast<double>(p) / dim);
    if (freq_factors != nullptr) inv_freq /= static_cast<double>(freq_factors[p]);
    const double angle = pos * inv_freq;
    cos[p] = static_cast<float>(std::cos(angle));
    sin[p] = static_cast<float>(std::sin(angle));
  }
}

}  // namespace scholar::kernels
