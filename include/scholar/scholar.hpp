// scholar/scholar.hpp: everything in one include.
//
// scholar builds, trains, shrinks, adapts, searches with and runs small language models on a CPU.
// A first taste of the base layers:
//
//   #include <scholar/scholar.hpp>
//   using namespace scholar;
//
//   std::puts(system_info().c_str());                 // SIMD path, threads, GEMM backend
//   Generator gen(42);                                // reproducible on every platform
//   auto x = randn({4, 768}, gen);                    // Tensor<float> [4, 768]
//   auto w = randn({3072, 768}, gen, 0.0f, 0.02f);
//   auto h = gelu(matmul(x, w.t()));                  // [4, 3072]; w.t() is a view, no copy
//   auto p = softmax(h, -1);                          // each row sums to 1
//   std::cout << p.slice(1, 0, 5) << "\n";            // first 5 columns of each row
//
// Shape legend used in comments across scholar: B batch, T time (sequence position), C channels
// (model width), V vocabulary, H heads, D head dimension, N a generic length.
//
// Layers, each using only those above it (docs/design.md): core (errors, thread pools, progress
// and log callbacks), tensor (types, views, ops, RNG, the weight-type table), kernels (SIMD loops,
// GEMM), io (JSON, safetensors, GGUF), text (tokenizers, UTF-8, Unicode data), autograd, nn
// (modules, GPT-2 and Llama models, the BERT encoder, architecture tables), optim, train
// (datasets, the training loop, checkpoints), infer (models and sessions), generate (decoding),
// index (vector search), distill (teachers, soft-label caches), finetune (LoRA adapters in PEFT's
// layout), rag (loaders, splitters, embedders, BM25, the store, answers with sources). See docs/
// for a guide per layer.
#pragma once

#include "scholar/autograd/ops.hpp"
#include "scholar/autograd/var.hpp"
#include "scholar/distill/distill.hpp"
#include "scholar/error.hpp"
#include "scholar/finetune/adapter.hpp"
#include "scholar/generate/generate.hpp"
#include "scholar/index/hnsw.hpp"
#include "scholar/index/index.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/infer/teacher.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/json.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/nn/arch.hpp"
#include "scholar/nn/encoder.hpp"
#include "scholar/nn/lora.hpp"
#include "scholar/nn/module.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"
#include "scholar/rag/answer.hpp"
#include "scholar/rag/bm25.hpp"
#include "scholar/rag/embedder.hpp"
#include "scholar/rag/embedder_training.hpp"
#include "scholar/rag/fusion.hpp"
#include "scholar/rag/loader.hpp"
#include "scholar/rag/splitter.hpp"
#include "scholar/rag/store.hpp"
#include "scholar/system.hpp"
#include "scholar/tensor/dtype.hpp"
#include "scholar/tensor/eigen.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/quant.hpp"
#include "scholar/tensor/random.hpp"
#include "scholar/tensor/shape.hpp"
#include "scholar/tensor/tensor.hpp"
#include "scholar/text/chat.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"
#include "scholar/text/wordpiece.hpp"
#include "scholar/train/data.hpp"
#include "scholar/train/instruct.hpp"
#include "scholar/train/objective.hpp"
#include "scholar/train/trainer.hpp"
#include "scholar/version.hpp"
