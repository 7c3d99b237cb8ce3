// scholar/text/chat.hpp: conversations rendered the way a model family was trained to read them.
//
// Models ship their chat format as a Jinja template (tokenizer_config.json's "chat_template",
// GGUF's tokenizer.chat_template). scholar does not run Jinja: like llama.cpp
// (llm_chat_detect_template) it recognizes the common formats by their markers and renders them
// natively. A rendered conversation is a list of pieces, each marked as something the model should
// learn to write (an assistant's reply and the marker that ends it) or not, which is what
// supervised fine-tuning needs to put the loss on the answers only.
//
//   text::ChatTemplate t = text::ChatTemplate::detect(tok.chat_template())
//                              .value_or(text::ChatTemplate(text::ChatFormat::chatml));
//   std::string prompt = t.prompt({{"user", "What is a daemon?"}});
//   // "<|im_start|>user\nWhat is a daemon?<|im_end|>\n<|im_start|>assistant\n"
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scholar::text {

/// One turn of a conversation: role "system", "user" or "assistant", and its text.
struct ChatMessage {
  std::string role;
  std::string content;
};

/// A piece of a rendered conversation.
struct ChatPiece {
  enum class Kind : uint8_t {
    text,  ///< `text`, encoded with special-token parsing (so "<|im_end|>" is one token)
    bos,   ///< the tokenizer's begin-of-sequence token, if it has one
    eos    ///< the tokenizer's end-of-sequence token
  };
  Kind kind = Kind::text;
  std::string text;
  bool trainable = false;  ///< part of an assistant's reply: the loss applies here
};

/// The formats scholar renders.
enum class ChatFormat : uint8_t {
  plain,   ///< "### User:\n...\n\n### Assistant:\n" + reply + EOS token (no special tokens needed)
  chatml,  ///< "<|im_start|>role\n...<|im_end|>\n" (Qwen2, many fine-tunes; TRL's default)
  llama2,  ///< "[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] reply </s>" (Llama 2, Mistral)
  llama3,  ///< "<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>" (Llama 3)
  zephyr   ///< "<|role|>\n...</s>\n" (Zephyr, TinyLlama chat)
};

/// Renders conversations in one ChatFormat. Immutable; safe to share between threads.
class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format = ChatFormat::plain) : format_(format) {}
  /// The format whose markers a Jinja chat template uses, or nullopt when none is recognized (an
  /// empty string included).
  static std::optional<ChatTemplate> detect(std::string_view jinja);
  /// By name: "plain", "chatml", "llama2", "llama3" or "zephyr" (ValueError otherwise).
  static ChatTemplate from_name(std::string_view name);

  ChatFormat format() const noexcept { return format_; }
  std::string_view name() const noexcept;

  /// The pieces of `messages`; with add_generation_prompt, the opening of an assistant turn is
  /// appended (what a model continues from). The first piece is a BOS marker (the caller's
  /// tokenizer decides whether there is such a token). ValueError for a role other than system,
  /// user and assistant, or a system message that is not first.
  std::vector<ChatPiece> render(std::span<const ChatMessage> messages,
                                bool add_generation_prompt = false) const;
  /// The text of render(messages, true) without BOS/EOS markers: a prompt for generation.
  std::string prompt(std::span<const ChatMessage> messages) const;
  std::string prompt(std::initializer_list<ChatMessage> messages) const {
    return prompt(std::span<const ChatMessage>(messages.begin(), messages.size()));
  }

 private:
  ChatFormat format_;
};

}  // namespace scholar::text
