// Printing tensors: a header with the dtype and shape, then the values as nested brackets, with
// "..." standing for the middle of long dimensions (as NumPy and PyTorch summarize).
#include <cstdio>
#include <ostream>
#include <sstream>

#include "scholar/tensor/tensor.hpp"

namespace scholar {

namespace {

constexpr int64_t kSummarizeAbove = 1000;  // elements
constexpr int64_t kEdgeItems = 3;

template <class T>
std::string format_value(T v) {
  char buf[32];
  if constexpr (std::is_same_v<T, int32_t>) {
    std::snprintf(buf, sizeof buf, "%d", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(static_cast<float>(v)));
  }
  return buf;
}

template <class T>
void print_rec(std::ostream& os, const Tensor<T>& t, int dim, const T* p, bool summarize,
               int indent) {
  const int64_t n = t.shape()[dim];
  const int64_t st = t.strides()[dim];
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << (dim + 1 == t.rank() ? "..., "
                                 : "...,\n" + std::string(static_cast<size_t>(indent + 1), ' '));
      i = n - kEdgeItems;
    }
    if (dim + 1 == t.rank()) {
      os << format_value(p[i * st]);
      if (i + 1 < n) os << ", ";
    } else {
      print_rec(os, t, dim + 1, p + i * st, summarize, indent + 1);
      if (i + 1 < n) os << ",\n" << std::string(static_cast<size_t>(indent + 1), ' ');
    }
  }
  os << ']';
}

}  // namespace

template <Element T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  os << "Tensor<" << dtype_name(t.dtype()) << ">";
  if (!t.defined()) return os << "(undefined)";
  os << t.shape().str();
  if (t.rank() == 0) return os << ' ' << format_value(*t.data());
  if (t.numel() == 0) return os << " []";
  os << '\n';
  print_rec(os, t, 0, t.data(), t.numel() > kSummarizeAbove, 0);
  return os;
}

template <Element T>
std::string to_string(const Tensor<T>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

template std::ostream& operator<<(std::ostream&, const Tensor<float>&);
template std::ostream& operator<<(std::ostream&, const Tensor<bf16>&);
template std::ostream& operator<<(std::ostream&, const Tensor<f16>&);
template std::ostream& operator<<(std::ostream&, const Tensor<int32_t>&);
template std::string to_string(const Tensor<float>&);
template std::string to_string(const Tensor<bf16>&);
template std::string to_string(const Tensor<f16>&);
template std::string to_string(const Tensor<int32_t>&);

}  // namespace scholar
