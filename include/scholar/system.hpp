// scholar/system.hpp: what scholar chose on this machine.
#pragma once

#include <string>

namespace scholar {

/// One line describing the build and the run-time choices: library version, the SIMD instruction
/// set the kernels run (and which the CPU offers), the thread count, the GEMM backend and whether
/// large blocks get huge pages (set_huge_pages). Print it at start-up, as llama.cpp prints its
/// system info: a scalar fallback should never go unseen.
std::string system_info();

}  // namespace scholar
