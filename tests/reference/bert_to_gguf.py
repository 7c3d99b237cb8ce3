#!/usr/bin/python3
"""Writes a sentence-transformers BERT directory as llama.cpp's BERT GGUF with llama.cpp's own
gguf-py (its GGUFWriter, its TensorNameMap for the tensor names, and the phantom-space vocabulary of
conversion/bert.py), independently of scholar's writer. Used by make_bert_llama_cpp_fixtures.sh.

usage: bert_to_gguf.py LLAMA_CPP_SRC MODEL_DIR OUT.gguf
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(sys.argv[1], "gguf-py"))
sys.path.insert(0, os.path.dirname(__file__))
import gguf  # noqa: E402
from st_write import load  # noqa: E402

model_dir, out = sys.argv[2], sys.argv[3]
cfg = json.load(open(os.path.join(model_dir, "config.json")))
tj = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
pool = json.load(open(os.path.join(model_dir, "1_Pooling", "config.json")))

w = gguf.GGUFWriter(out, "bert")
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_block_count(cfg["num_hidden_layers"])
w.add_head_count(cfg["num_attention_heads"])
w.add_layer_norm_eps(cfg["layer_norm_eps"])
w.add_causal_attention(False)
w.add_pooling_type(gguf.PoolingType.CLS if pool.get("pooling_mode_cls_token") else gguf.PoolingType.MEAN)
w.add_file_type(gguf.LlamaFileType.ALL_F32)

# Vocabulary: control tokens as they are, "##x" -> "x", others "\u2581" + token.
vocab = sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])
special = {t["content"] for t in tj["added_tokens"] if t.get("special")}
tokens, types = [], []
for tok, _ in vocab:
    if tok in special:
        tokens.append(tok)
        types.append(gguf.TokenType.CONTROL)
    elif tok.startswith("##"):
        tokens.append(tok[2:])
        types.append(gguf.TokenType.NORMAL)
    else:
        tokens.append("\u2581" + tok)
        types.append(gguf.TokenType.NORMAL)
ids = dict(vocab)
w.add_token_type_count(cfg.get("type_vocab_size", 1))
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("default")
w.add_token_list(tokens)
w.add_token_types(types)
w.add_unk_token_id(ids["[UNK]"])
w.add_sep_token_id(ids["[SEP]"])
w.add_pad_token_id(ids["[PAD]"])
w.add_bos_token_id(ids["[CLS]"])  # llama.cpp frames BERT input with BOS ... SEP
w.add_eos_token_id(ids["[SEP]"])
w.add_mask_token_id(ids["[MASK]"])

names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
for name, t in load(os.path.join(model_dir, "model.safetensors"))[0].items():
    if name.startswith("pooler.") or name == "embeddings.position_ids":
        continue
    base, suffix = name.rsplit(".", 1)
    mapped = names.get_name(base)
    if mapped is None:
        raise SystemExit(f"no GGUF name for {name}")
    w.add_tensor(f"{mapped}.{suffix}", t.float().numpy().astype(np.float32))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out}: {len(tokens)} tokens")
