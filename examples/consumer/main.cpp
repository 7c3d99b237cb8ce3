// Builds tensors, multiplies them, takes a softmax and checks the results against plain loops;
// prints what scholar chose on this machine. Exits non-zero if anything disagrees.
#include <scholar/scholar.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>

int main() {
  using namespace scholar;
  std::printf("%s\n", system_info().c_str());

  Generator gen(7);
  const Tensor<float> a = randn({4, 5}, gen);
  const Tensor<float> b = randn({3, 5}, gen);
  const Tensor<float> c = matmul(a, b.t());  // [4, 3]; b.t() is a strided view
  const Tensor<float> p = softmax(c, -1);
  std::cout << "a @ b^T = " << c << "\nsoftmax = " << p << "\n";

  int bad = 0;
  for (int64_t i = 0; i < 4; ++i) {
    double row = 0;
    for (int64_t j = 0; j < 3; ++j) {
      double want = 0;
      for (int64_t k = 0; k < 5; ++k) want += double{a(i, k)} * double{b(j, k)};
      if (std::fabs(c(i, j) - want) > 1e-4) ++bad;
      row += p(i, j);
    }
    if (std::fabs(row - 1.0) > 1e-5) ++bad;
  }
  std::printf("%s\n", bad == 0 ? "consumer: OK" : "consumer: MISMATCH");
  return bad == 0 ? 0 : 1;
}
