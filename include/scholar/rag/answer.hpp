// scholar/rag/answer.hpp: answering a question from a store — a prompt with numbered sources that
// always fits the generator's context, and ask(), which retrieves, prompts and streams the answer.
//
//   auto model = infer::Model::load("model.gguf");
//   rag::AskOptions opt;
//   opt.search.k = 4;
//   opt.generation.temperature = 0;                    // any generate::GenerationConfig
//   rag::Answer a = rag::ask(store, model, "What is a kludge?", opt,
//                            [](std::string_view piece) { std::cout << piece << std::flush; });
//   for (const rag::Source& s : a.sources) std::cout << "[" << s.n << "] " << s.document_id;
//
// The prompt is measured in tokens of the generator's own tokenizer: sources are taken best first
// while they fit into context - max_new_tokens, the last one cut (at a character boundary) when
// only part of it fits, so the prompt never overflows. A question that does not fit even without
// sources is a ValueError saying how many tokens it needs.
//
// Thread-safety: build_prompt is a pure function; ask() uses its own inference session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/generate/generate.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/rag/store.hpp"

namespace scholar::rag {

/// A chunk given to the model, numbered as the prompt numbers it.
struct Source {
  int n = 0;  ///< 1, 2, ... as cited in the answer ("[1]")
  uint64_t chunk_id = 0;
  std::string document_id, source;
  std::string text;  ///< as it appears in the prompt (possibly cut)
  double score = 0;  ///< the search score
  bool cut = false;  ///< only the start of the chunk fitted
};

/// How the prompt is written.
struct PromptOptions {
  /// The whole prompt; "{sources}" and "{question}" are replaced.
  std::string prompt_template =
      "Answer the question using the numbered sources below. Cite the sources you use by their "
      "numbers, like [1].\n\nSources:\n{sources}\nQuestion: {question}\nAnswer:";
  /// One source; "{n}", "{document}", "{source}" and "{text}" are replaced.
  std::string source_template = "[{n}] {document}\n{text}\n\n";
  /// Wrap the prompt as a user turn of the model's chat template, when its tokenizer names one
  /// scholar renders (text::ChatTemplate::detect).
  bool use_chat_template = true;
  /// A chat format to use whatever the tokenizer says ("chatml", "llama3", ... as
  /// text::ChatTemplate::from_name), for models fine-tuned on a format their files do not name;
  /// "" follows use_chat_template.
  std::string chat_format;
  /// A source that would be cut to fewer tokens than this is left out instead.
  int64_t min_source_tokens = 16;

  /// Templates without instructions, for models whose context holds little more than a source
  /// or two: "[1] text\n...Question: ...\nAnswer:".
  static PromptOptions compact() {
    PromptOptions o;
    o.prompt_template = "{sources}Question: {question}\nAnswer:";
    o.source_template = "[{n}] {text}\n";
    return o;
  }
};

/// A prompt ready for the model.
struct Prompt {
  std::string text;             ///< as rendered (chat markers included)
  std::vector<int32_t> ids;     ///< what the model is fed; ids.size() <= the budget
  std::vector<Source> sources;  ///< the sources it holds, numbered from 1
  size_t left_out = 0;          ///< candidate sources that did not fit
};

/// Builds a prompt of at most max_tokens tokens of `tok` from the question and the candidate
/// sources (best first). ValueError if max_tokens < 1 or the question alone does not fit.
Prompt build_prompt(std::string_view question, std::span<const Source> candidates,
                    const text::Tokenizer& tok, int64_t max_tokens,
                    const PromptOptions& options = {});

/// Settings of ask().
struct AskOptions {
  SearchOptions search;                   ///< how many chunks, which mode, weights
  generate::GenerationConfig generation;  ///< decoding (max_new_tokens is reserved in the context)
  PromptOptions prompt;
  /// The session's context (0: the model's, at most infer::kDefaultMaxContext).
  int64_t n_ctx = 0;
};

/// What ask() returns.
struct Answer {
  std::string text;             ///< the generated answer
  std::vector<Source> sources;  ///< what the model was given, numbered as in the prompt
  std::string prompt;
  generate::Result generation;
  /// The answer followed by its sources ("\n\nSources:\n[1] foldoc.dict.dz#kludge\n...").
  std::string with_sources() const;
};

/// Retrieves from `store`, builds the prompt and generates with `model`, streaming the answer's
/// text to on_text (complete UTF-8 pieces). Errors: ValueError for a question longer than the
/// context, a bad option, or a model without a tokenizer.
Answer ask(const Store& store, std::shared_ptr<const infer::Model> model, std::string_view question,
           const AskOptions& options = {},
           const std::function<void(std::string_view)>& on_text = {});

}  // namespace scholar::rag
