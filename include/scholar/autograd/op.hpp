// scholar/autograd/op.hpp: the registry of differentiable operations.
//
// Every operation that records a Node names itself with an Op. Adding an Op without its name fails
// to compile (the static_assert below), as in ggml's op tables.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace scholar::autograd {

enum class Op : uint8_t {
  matmul,
  linear,
  add,
  sub,
  mul,
  scale,
  sum,
  mean,
  embedding,
  layernorm,
  rmsnorm,
  gelu,
  gelu_erf,
  silu,
  swiglu,
  softmax,
  log_softmax,
  l2_normalize,
  attention,
  dropout,
  reshape,
  transpose,
  slice,
  concat,
  cross_entropy,
  distill,
  lora_linear,
  count  // not an op: the number of ops
};

inline constexpr std::array<std::string_view, static_cast<size_t>(Op::count)> kOpNames = {
    "matmul",    "linear",    "add",         "sub",           "mul",       "scale",       "sum",
    "mean",      "embedding", "layernorm",   "rmsnorm",       "gelu",      "gelu_erf",    "silu",
    "swiglu",    "softmax",   "log_softmax", "l2_normalize",  "attention", "dropout",     "reshape",
    "transpose", "slice",     "concat",      "cross_entropy", "distill",   "lora_linear",
};
static_assert(kOpNames.size() == static_cast<size_t>(Op::count) && !kOpNames.back().empty(),
              "every Op needs a name in kOpNames");

/// "matmul", "layernorm", ...
constexpr std::string_view op_name(Op op) {
  return kOpNames[static_cast<size_t>(op)];
}

}  // namespace scholar::autograd
