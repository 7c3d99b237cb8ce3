#include "scholar/system.hpp"

#include <cstdlib>

#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/tensor.hpp"
#include "scholar/version.hpp"

namespace scholar {

std::string system_info() {
  const kernels::KernelTable& k = kernels::active();
  std::string s = "scholar " SCHOLAR_VERSION_STRING;
  s += " | SIMD: ";
  s += kernels::isa_name(k.isa);
  const char* env = std::getenv("SCHOLAR_ISA");
  if (env && *env) {
    s += " (forced by SCHOLAR_ISA)";
  } else if (k.isa != kernels::best_isa()) {
    s += " (set by set_isa; best is ";
    s += kernels::isa_name(kernels::best_isa());
    s += ")";
  }
  s += " | CPU: ";
  s += kernels::cpu_features();
  s += " | threads: " + std::to_string(num_threads());
  s += " | GEMM: " + kernels::gemm_backend();
  s += " | matmul precision: ";
  s += kernels::matmul_precision_name(kernels::effective_matmul_precision());
  if (kernels::effective_matmul_precision() == kernels::MatmulPrecision::bf16) {
    s += " (";
    s += kernels::bf16_gemm_engine();
    s += ")";
  }
  if (kernels::matmul_precision() != kernels::effective_matmul_precision())
    s += " (bf16 asked for; this CPU or kernel table has no AVX512_BF16)";
  s += " | huge pages: ";
  s += huge_pages() ? "on" : "off";
  return s;
}

}  // namespace scholar
