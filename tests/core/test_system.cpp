// system_info() reports the run-time choices.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/system.hpp"
#include "scholar/tensor/tensor.hpp"

using namespace scholar;

TEST_CASE("system_info names the ISA, threads and GEMM backend", "[system]") {
  const std::string s = system_info();
  INFO(s);
  CHECK(s.find("scholar ") == 0);
  CHECK(s.find(std::string("SIMD: ") + std::string(kernels::isa_name(kernels::active().isa))) !=
        std::string::npos);
  CHECK(s.find("threads: " + std::to_string(num_threads())) != std::string::npos);
  CHECK(s.find("GEMM: ") != std::string::npos);
  CHECK(s.find("CPU: ") != std::string::npos);
  CHECK(s.find(huge_pages() ? "huge pages: on" : "huge pages: off") != std::string::npos);
}

TEST_CASE("set_isa switches the active table and system_info says so", "[system]") {
  const kernels::Isa before = kernels::active().isa;
  kernels::set_isa(kernels::Isa::scalar);
  CHECK(kernels::active().isa == kernels::Isa::scalar);
  const char* forced = std::getenv("SCHOLAR_ISA");  // system_info then names the variable
  if (kernels::best_isa() != kernels::Isa::scalar && (forced == nullptr || *forced == '\0'))
    CHECK(system_info().find("SIMD: scalar (set by set_isa") != std::string::npos);
  kernels::set_isa(before);
  CHECK(kernels::active().isa == before);
}
