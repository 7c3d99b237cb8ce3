// scholar/infer/model.hpp: fast inference on (possibly quantized) weights, with a KV cache.
//
// The inference path has no autograd. A Model holds the weights, read-only: in place in the mapped
// file where the format allows (GGUF, aligned safetensors), so loading is quick and several
// processes share the pages. A Session holds everything that changes while generating: the KV
// cache (preallocated for its context), the scratch buffers (allocated once, so the per-token loop
// never allocates), and the logits. Many Sessions may share one Model, as llama.cpp's contexts
// share a model.
//
// clang-format off
//   auto model = infer::Model::load("model.gguf");  // or a Hugging Face dir, or a checkpoint
//   infer::Session s(model);
//   std::vector<int32_t> ids = model->tokenizer().encode("The quick brown");
//   std::span<const float> logits = s.prefill(ids);  // [V]: the last token's
//   int32_t next = ...;                              // see scholar/generate
//   logits = s.decode_one(next);
// clang-format on
//
// The KV cache works like llama.cpp's: cells each hold one position of one or more sequences, so a
// sequence can be forked (copy_sequence, which copies no data), trimmed (remove) or dropped; beam
// search and shared prompt prefixes use this.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/io/file.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/nn/arch.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/tensor/quant.hpp"
#include "scholar/text/tokenizer.hpp"

namespace scholar {
class ThreadPool;
}

namespace scholar::infer {

/// A weight matrix of `rows` x `cols` values in one storage type, row-major (each row is
/// row_bytes(type, cols) bytes). Vectors (norm weights, biases) are rows == 1, always f32.
struct Weight {
  WeightType type = WeightType::f32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  std::shared_ptr<const void> owner;  ///< keeps `data` alive (a mapping or an owned buffer)
  std::string name;                   ///< the tensor's name in its file (for messages)
  /// Q8_0/Q4_0 matrices with a multiple of 8 rows: the same blocks interleaved by repack_x8
  /// (BlockQ8_0x8 / BlockQ4_0x8), which the products use; null otherwise.
  const void* packed = nullptr;
  std::shared_ptr<const void> packed_owner;

  bool empty() const noexcept { return data == nullptr; }
  size_t bytes() const noexcept { return row_bytes(type, cols) * static_cast<size_t>(rows); }
  const float* f32() const noexcept { return static_cast<const float*>(data); }
  /// Row r converted to f32 into out (cols values).
  void row_to_f32(int64_t r, float* out) const;
  /// The whole matrix as f32 (a copy).
  std::vector<float> to_f32() const;
  /// This matrix stored as `t` (a copy; quantizing needs cols % 32 == 0).
  Weight convert(WeightType t) const;
  /// Adds the interleaved copy used by the products, when the type and row count allow.
  void pack();
  /// An owned f32 weight.
  static Weight from_f32(std::vector<float> values, int64_t rows, int64_t cols);
};

/// One transformer block's weights. Empty members are absent in this architecture.
struct LayerWeights {
  Weight attn_norm, attn_norm_b;
  Weight wqkv, bqkv;              // GPT-2: fused [3C, C]
  Weight wq, wk, wv, bq, bk, bv;  // Llama family (biases: Qwen2)
  Weight wo, bo;
  Weight ffn_norm, ffn_norm_b;
  Weight w_gate, w_up, b_up, w_down, b_down;
  Weight attn_out_norm, attn_out_norm_b;    // BERT: LayerNorm after the attention residual
  Weight layer_out_norm, layer_out_norm_b;  // BERT: LayerNorm after the MLP residual
};

/// Everything the forward pass reads.
struct ModelWeights {
  Weight tok_embd, pos_embd;      // pos_embd: GPT-2 and BERT
  Weight tok_types;               // BERT: token-type embeddings [types, C]
  Weight embd_norm, embd_norm_b;  // BERT: LayerNorm over the summed embeddings
  std::vector<LayerWeights> layers;
  Weight out_norm, out_norm_b;
  Weight output;  ///< the head [V, C] (the token embedding when tied; empty for an encoder)
};

/// Calls fn(const Weight&) for every member of `w`, empty ones included, in a fixed order (the
/// output head only when it is not the token embedding itself).
template <class Fn>
void for_each_weight(const ModelWeights& w, Fn&& fn) {
  fn(w.tok_embd);
  fn(w.pos_embd);
  fn(w.tok_types);
  fn(w.embd_norm);
  fn(w.embd_norm_b);
  for (const auto& l : w.layers)
    for (const Weight* p : {&l.attn_norm,
                            &l.attn_norm_b,
                            &l.wqkv,
                            &l.bqkv,
                            &l.wq,
                            &l.wk,
                            &l.wv,
                            &l.bq,
                            &l.bk,
                            &l.bv,
                            &l.wo,
                            &l.bo,
                            &l.ffn_norm,
                            &l.ffn_norm_b,
                            &l.w_gate,
                            &l.w_up,
                            &l.b_up,
                            &l.w_down,
                            &l.b_down,
                            &l.attn_out_norm,
                            &l.attn_out_norm_b,
                            &l.layer_out_norm,
                            &l.layer_out_norm_b})
      fn(*p);
  fn(w.out_norm);
  fn(w.out_norm_b);
  if (w.output.data != w.tok_embd.data || w.output.empty()) fn(w.output);
}

/// The member of `w` that holds a tensor role (nn/arch.hpp) of layer `layer` (ignored for global
/// roles): how the architecture tables' rows bind to these structs, in one place.
Weight& weight_for(ModelWeights& w, nn::TensorRole role, int64_t layer);
const Weight& weight_for(const ModelWeights& w, nn::TensorRole role, int64_t layer);

/// Architecture plus what inference needs beyond nn::TransformerConfig.
struct ModelConfig {
  nn::TransformerConfig arch;
  /// How RoPE pairs dimensions in these weights: Hugging Face Llama checkpoints use half,
  /// llama.cpp's GGUF Llama (whose converter permutes the Q and K rows) uses interleaved.
  kernels::RopeStyle rope_style = kernels::RopeStyle::half;
  int32_t bos_id = -1, eos_id = -1;  ///< -1: none known
  /// Keep an interleaved copy of Q8_0/Q4_0 matrices (Weight::pack), which prompt processing uses.
  /// false halves the memory of a quantized model, and prompts run on the slower plain kernels.
  bool interleave = true;
  /// How an embedding model's token states become one vector, when its file says: "mean", "cls",
  /// "last" or "none" (GGUF's <arch>.pooling_type); "" when it does not (sentence-transformers
  /// keep it in their own 1_Pooling/config.json).
  std::string pooling;
};

/// How Model::load brings weight files into memory.
struct LoadOptions {
  /// io::FileAccess::map (default): weights are used in place in the mapped file, which opens
  /// instantly and shares pages with other processes. io::FileAccess::copy: the file is read into
  /// private memory on huge pages, which makes decoding a few percent faster (fewer TLB misses
  /// when every weight is read per token) at the cost of reading the whole file up front.
  io::FileAccess access = io::FileAccess::map;
  /// ModelConfig::interleave: false keeps no interleaved copy of quantized matrices (half the
  /// memory; prompt processing about 3.9x slower at Q8_0, 3.1x at Q4_0). llama.cpp's --no-repack.
  bool interleave = true;
};

class Model;

/// A low-rank update of one weight matrix, applied without merging it into the weights:
/// y = W x + scale * B (A x), the form of a LoRA adapter. A is [rank, in] and B is [out, rank],
/// f32 row-major (PEFT's lora_A and lora_B); scale is lora_alpha / rank (or / sqrt(rank) for
/// rsLoRA).
struct LoraUpdate {
  std::vector<float> a, b;
  int64_t rank = 0;
  float scale = 1.0f;
};

/// Low-rank updates by tensor (an architecture-table role and a layer), for Session::set_adapter.
/// Several sessions may share one (it is read-only once attached).
class Adapter {
 public:
  /// Adds the update of one matrix (ValueError if that matrix already has one, or if the sizes of
  /// a and b disagree with rank; the matrix's own shape is checked when the adapter is attached).
  void add(nn::TensorRole role, int64_t layer, LoraUpdate update);
  /// The update of a matrix, or nullptr.
  const LoraUpdate* find(nn::TensorRole role, int64_t layer) const;
  /// Every (role, layer) with an update.
  std::vector<std::pair<nn::TensorRole, int64_t>> targets() const;
  /// Checks that every update fits a matrix of `model`: ValueError for a role the model does not
  /// have, ShapeError naming the tensor for sizes that disagree.
  void check(const Model& model) const;

 private:
  std::vector<std::pair<std::pair<nn::TensorRole, int64_t>, LoraUpdate>> updates_;
};

/// An adapter and the factor its updates are multiplied by (llama.cpp's --lora-scaled FILE SCALE):
/// 1 applies it as trained, 0.5 half-way, 0 not at all.
struct AdapterScale {
  std::shared_ptr<const Adapter> adapter;
  float scale = 1.0f;
};

/// Loaded weights, config and tokenizer. Immutable after loading.
///
/// Thread-safety: all member functions are const; share one Model between threads and Sessions.
class Model {
 public:
  /// Loads by looking at `path`: a directory (Hugging Face: config.json, model.safetensors or its
  /// sharded index, tokenizer.json if present), a .gguf file, or a .safetensors checkpoint written
  /// by train::Trainer (config and tokenizer in its metadata). FormatError naming the file, tensor
  /// and problem for anything wrong: missing tensors, shapes that disagree with the config,
  /// unsupported types or architectures.
  /// `opt.access` says whether weight files are memory-mapped (the default) or read into memory.
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& opt = {});
  static std::shared_ptr<const Model> from_gguf(const std::string& path,
                                                const LoadOptions& opt = {});
  static std::shared_ptr<const Model> from_hf_dir(const std::string& dir,
                                                  const LoadOptions& opt = {});
  static std::shared_ptr<const Model> from_checkpoint(const std::string& path,
                                                      const LoadOptions& opt = {});
  /// Copies the weights of a model built or trained with scholar::nn.
  static std::shared_ptr<const Model> from_module(
      const nn::TransformerLM& lm, std::shared_ptr<const text::Tokenizer> tok = nullptr);
  /// Assembles a model from parts (validates every shape against cfg). `tokenizer_note` says why
  /// there is no tokenizer when tok is null (tokenizer() reports it).
  Model(ModelConfig cfg, ModelWeights w, std::shared_ptr<const text::Tokenizer> tok,
        std::string source, std::string tokenizer_note = {});

  const ModelConfig& config() const noexcept { return cfg_; }
  const nn::TransformerConfig& arch() const noexcept { return cfg_.arch; }
  const ModelWeights& weights() const noexcept { return w_; }
  /// Where it was loaded from (for messages).
  const std::string& source() const noexcept { return source_; }
  bool has_tokenizer() const noexcept { return tok_ != nullptr; }
  /// The tokenizer; Error if the file carried none.
  const text::Tokenizer& tokenizer() const;
  std::shared_ptr<const text::Tokenizer> tokenizer_ptr() const noexcept { return tok_; }
  /// Bytes of all weights (what one decode step reads, plus the embedding table).
  size_t weight_bytes() const;
  /// Bytes read per decoded token: every matrix once, one embedding row.
  size_t bytes_per_token() const;
  /// The storage type of most matrices ("f32", "q8_0", ...; "mixed" otherwise).
  std::string weight_type_summary() const;

  /// The model as a trainable nn::TransformerLM (f32 parameters under Hugging Face names): what
  /// fine-tuning and distillation start from, whatever the file was. Quantized weights are
  /// dequantized, GPT-2's matrices transposed back to Conv1D's [in, out], and the Q/K rows of a
  /// llama.cpp Llama GGUF put back in Hugging Face's RoPE order, so that the module's logits equal
  /// this model's (up to the rounding of the stored weights).
  std::unique_ptr<nn::TransformerLM> to_module() const;

  /// A copy with every matrix whose rows are a multiple of 32 values stored as `t` (others, and
  /// vectors, stay f32). Quantized from f32 values (dequantizing first if needed).
  std::shared_ptr<const Model> converted(WeightType t) const;

  /// A copy with the adapters merged into its weights: W + sum scale * B A for every matrix an
  /// adapter updates (ShapeError/ValueError as Session::set_adapters). A quantized matrix is
  /// converted to f32, updated and quantized again to its type, so the merged model differs from
  /// the unmerged one by one more rounding (docs/finetuning.md measures it); the other weights are
  /// shared with this model, not copied.
  std::shared_ptr<const Model> merged(const std::vector<AdapterScale>& adapters) const;

  /// Writes a GGUF v3 file that llama.cpp runs: architecture gpt2, llama or qwen2, tensors in
  /// llama.cpp's names and layouts (Llama Q/K rows permuted for its RoPE), matrices in `t`
  /// (rows not a multiple of 32 stay f32 when t is quantized), and the tokenizer if there is one.
  /// Atomic (temporary file + rename).
  void save_gguf(const std::string& path, WeightType t) const;

 private:
  ModelConfig cfg_;
  ModelWeights w_;
  std::shared_ptr<const text::Tokenizer> tok_;
  std::string source_;
  std::string tokenizer_note_;  // why there is no tokenizer, when there is none
};

/// The default context of a Session when SessionOptions::n_ctx is 0 and the model's is longer (a
/// 128k-token context would preallocate gigabytes of cache).
inline constexpr int64_t kDefaultMaxContext = 4096;

/// Options of a Session.
struct SessionOptions {
  /// KV cache cells (K and V: 2 * n_layers * kv_width values each, in cache_type). 0: the model's
  /// context length, at most kDefaultMaxContext; ask for more explicitly.
  int64_t n_ctx = 0;
  int64_t max_batch = 512;  ///< most tokens per decode() call (scratch is sized for it)
  int max_sequences = 16;   ///< sequence ids 0 .. max_sequences - 1 (at most 64)
  /// How the KV cache stores K and V, as llama.cpp's -ctk/-ctv: f32 (exact), f16 or bf16 (half the
  /// memory), q8_0 (about a quarter), q4_0 (about an eighth); the block types need a head
  /// dimension that is a multiple of 32. Attention converts the rows back to f32. An encoder's
  /// session stores no K and V rows (see embeddings), so this does not apply to it.
  WeightType cache_type = WeightType::f32;
  /// Return, for each flagged token, the final norm's output (n_embd values: the hidden state
  /// embedding models pool) instead of its logits. Required for an encoder (the BERT family),
  /// whose attention is bidirectional over the tokens of its own sequence in the same decode()
  /// call: run each text whole in one call. An encoder's session keeps no K and V rows between
  /// calls (its cache_bytes() is 0), only the cells' bookkeeping, so clear() (or remove a
  /// sequence) to free its cells.
  bool embeddings = false;
  /// The pool the session's work runs on (not owned; it must outlive the session). Null: the
  /// calling thread's current pool (scholar::thread_pool(): the default pool unless a PoolScope
  /// says otherwise) at each call. Two sessions given two pools decode at the same time, each on
  /// its own threads.
  ThreadPool* pool = nullptr;
};

/// A batch of tokens to run, llama.cpp style: each token has a position and a sequence, and says
/// whether its logits are wanted.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> pos;
  std::vector<int32_t> seq;
  std::vector<uint8_t> logits;  ///< 1: return this token's logits
  void add(int32_t token, int64_t position, int32_t sequence, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.push_back(sequence);
    logits.push_back(want_logits ? 1 : 0);
  }
  void clear() {
    tokens.clear();
    pos.clear();
    seq.clear();
    logits.clear();
  }
  size_t size() const noexcept { return tokens.size(); }
};

/// The mutable state of inference: KV cache, scratch buffers, logits. Under bf16 matrix precision
/// (kernels::set_matmul_precision) on a CPU with AMX tiles, a session also keeps each f32 weight
/// packed in bf16 once it has served a product of 32 or more tokens (half the weight's size), so
/// that prompts and batches of texts do not pack it again.
///
/// Thread-safety: one thread at a time per Session (each call spreads its work over the pool).
class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, SessionOptions opt = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  const Model& model() const noexcept { return *model_; }
  int64_t n_ctx() const noexcept;
  /// Sequence ids this session accepts: 0 .. max_sequences() - 1.
  int max_sequences() const noexcept;
  int64_t vocab_size() const noexcept { return model_->arch().vocab_size; }

  /// Runs a batch: writes each token's K and V into a free cache cell, and returns the logits of
  /// the tokens flagged in batch.logits, one row of V per flagged token, in batch order (valid
  /// until the next call); with SessionOptions::embeddings, rows of n_embd hidden values instead.
  /// Errors: a token outside the vocabulary (IndexError), a position at or past the model's context
  /// length, or no free cell left (ValueError saying how many are used), a sequence id out of
  /// range; on error the cache is unchanged.
  std::span<const float> decode(const Batch& batch);

  /// Appends `ids` to sequence `seq` (positions continue from its last) and returns the last
  /// token's logits [V]. Splits long prompts into max_batch pieces.
  std::span<const float> prefill(std::span<const int32_t> ids, int32_t seq = 0);
  /// Appends one token to `seq` and returns its logits [V].
  std::span<const float> decode_one(int32_t id, int32_t seq = 0);

  // --- KV cache, by sequence (positions are half-open ranges; p1 < 0 means "to the end") -------
  /// Empties the cache.
  void clear();
  /// Removes positions [p0, p1) of `seq` (seq < 0: of every sequence).
  void remove(int32_t seq, int64_t p0 = 0, int64_t p1 = -1);
  /// Makes positions [p0, p1) of `src` part of `dst` as well (no data is copied). dst's own cells
  /// in that range are replaced.
  void copy_sequence(int32_t src, int32_t dst, int64_t p0 = 0, int64_t p1 = -1);
  /// Drops every sequence but `seq`.
  void keep_only(int32_t seq);
  /// The next position of `seq` (its largest position + 1; 0 when empty).
  int64_t next_pos(int32_t seq = 0) const;
  /// Cells in use.
  int64_t used_cells() const;
  /// Bytes of the KV cache's K and V storage (0 for an encoder: see SessionOptions::embeddings).
  size_t cache_bytes() const noexcept;

  /// Applies adapters' low-rank updates, each times its scale (unmerged: the model's weights stay
  /// as they are, so sessions of one model may use different adapters, or none, at the same time).
  /// Replaces the previous set; an empty list removes them. ShapeError naming the tensor if an
  /// update does not fit its matrix, ValueError for a role the model does not have or a non-finite
  /// scale. Takes effect from the next decode; the cache is not cleared (clear() it when the
  /// cached prefix should be recomputed with the new adapters).
  void set_adapters(std::vector<AdapterScale> adapters);
  /// One adapter at scale 1 (null: none).
  void set_adapter(std::shared_ptr<const Adapter> adapter);

  /// The whole state (cache contents and bookkeeping) as bytes, and back. load_state checks that
  /// the bytes are for a model of the same shape and fit this session (FormatError otherwise).
  std::string save_state() const;
  void load_state(std::string_view bytes);
  /// The same through a file (written atomically).
  void save_state_file(const std::string& path) const;
  void load_state_file(const std::string& path);

 private:
  struct Impl;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scholar::infer
