#!/usr/bin/python3
"""Writes tests/data/bert/: a tiny random-weight BERT in sentence-transformers' directory layout
(the layout of all-MiniLM-L6-v2), and what PyTorch computes with it.

transformers and sentence-transformers are not packaged for Debian 12, so BertModel's forward pass
(transformers/models/bert/modeling_bert.py) and sentence-transformers' Pooling and Normalize
modules are written out here with python3-torch:
  embeddings  LayerNorm(word[id] + position[t] + token_type[0]), eps from config.json
  layer       a = LayerNorm(x + Wo softmax(Q K^T / sqrt(D) + mask) V + bo)
              x = LayerNorm(a + W2 gelu(W1 a + b1) + b2), gelu the exact erf form
  mask        padding: key positions past a text's length get the dtype's lowest value (as
              get_extended_attention_mask), so padded and unpadded runs agree
  pooling     mean over the real tokens (attention-mask weighted), the [CLS] token, or the max
              over real tokens; then L2 normalization (2_Normalize)
Token ids come from the WordPiece reference in make_wordpiece_fixtures.py (the same vocabulary).

Writes tests/data/bert/minilm_tiny/ (config.json, model.safetensors, modules.json,
sentence_bert_config.json, 1_Pooling/config.json, tokenizer.json, vocab.txt,
tokenizer_config.json; 2_Normalize is listed in modules.json but, being empty, is not stored) and
tests/data/bert/expected.safetensors + expected.json (texts, ids, hidden states of a padded batch,
embeddings under mean/cls/max pooling).
Run: /usr/bin/python3 tests/reference/make_bert_fixtures.py
"""
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from make_wordpiece_fixtures import CONFIGS, encode  # noqa: E402
from st_write import save  # noqa: E402

HERE = os.path.dirname(__file__)
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))
WP = os.path.join(DATA, "wordpiece")
OUT = os.path.join(DATA, "bert")
MODEL = os.path.join(OUT, "minilm_tiny")

CFG = dict(vocab_size=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
           intermediate_size=64, max_position_embeddings=40, type_vocab_size=2,
           layer_norm_eps=1e-12, hidden_act="gelu", position_embedding_type="absolute")

TEXTS = [
    "What is a kludge?",
    "A hacker is a person who enjoys exploring the details of programmable systems.",
    "Héllo wörld, naïve café!",
    "日本語のテキスト、東京タワー。",
    "x",
    "The quick brown fox jumps over the lazy dog; the lazy dog sleeps in the sun all day long "
    "while the fox runs around the field looking for something to eat before the night comes.",
]


def make_weights(V, g):
    C, L, Fh = CFG["hidden_size"], CFG["num_hidden_layers"], CFG["intermediate_size"]
    P, T = CFG["max_position_embeddings"], CFG["type_vocab_size"]

    def n(*shape, s=0.1):
        return torch.randn(*shape, generator=g) * s

    w = {
        "embeddings.word_embeddings.weight": n(V, C, s=0.5),
        "embeddings.position_embeddings.weight": n(P, C, s=0.2),
        "embeddings.token_type_embeddings.weight": n(T, C, s=0.2),
        "embeddings.LayerNorm.weight": 1 + n(C),
        "embeddings.LayerNorm.bias": n(C),
    }
    for i in range(L):
        p = f"encoder.layer.{i}."
        for m in ("query", "key", "value"):
            w[p + f"attention.self.{m}.weight"] = n(C, C, s=0.3)
            w[p + f"attention.self.{m}.bias"] = n(C)
        w[p + "attention.output.dense.weight"] = n(C, C, s=0.3)
        w[p + "attention.output.dense.bias"] = n(C)
        w[p + "attention.output.LayerNorm.weight"] = 1 + n(C)
        w[p + "attention.output.LayerNorm.bias"] = n(C)
        w[p + "intermediate.dense.weight"] = n(Fh, C, s=0.3)
        w[p + "intermediate.dense.bias"] = n(Fh)
        w[p + "output.dense.weight"] = n(C, Fh, s=0.2)
        w[p + "output.dense.bias"] = n(C)
        w[p + "output.LayerNorm.weight"] = 1 + n(C)
        w[p + "output.LayerNorm.bias"] = n(C)
    # The pooler of BertModel: saved by transformers, unused by sentence-transformers.
    w["pooler.dense.weight"] = n(C, C)
    w["pooler.dense.bias"] = n(C)
    return w


def bert_forward(w, ids, mask):
    """ids, mask [B, T] -> last hidden state [B, T, C] (float64 for a tight reference)."""
    C, H = CFG["hidden_size"], CFG["num_attention_heads"]
    D, eps = C // H, CFG["layer_norm_eps"]
    W = {k: v.double() for k, v in w.items()}
    B, T = ids.shape
    x = W["embeddings.word_embeddings.weight"][ids] + \
        W["embeddings.position_embeddings.weight"][torch.arange(T)][None] + \
        W["embeddings.token_type_embeddings.weight"][0][None, None]
    x = F.layer_norm(x, (C,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    ext = (1.0 - mask.double())[:, None, None, :] * torch.finfo(torch.float64).min
    for i in range(CFG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(name, v):
            return v @ W[p + name + ".weight"].T + W[p + name + ".bias"]

        def heads(v):
            return v.view(B, T, H, D).transpose(1, 2)

        q, k, v = (heads(lin(f"attention.self.{m}", x)) for m in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(D) + ext
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, C)
        x = F.layer_norm(x + lin("attention.output.dense", a), (C,),
                         W[p + "attention.output.LayerNorm.weight"],
                         W[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin("intermediate.dense", x))
        x = F.layer_norm(x + lin("output.dense", h), (C,), W[p + "output.LayerNorm.weight"],
                         W[p + "output.LayerNorm.bias"], eps)
    return x


def pool(h, mask, mode):
    m = mask.double()[..., None]
    if mode == "mean":
        v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif mode == "cls":
        v = h[:, 0]
    else:  # max over real tokens (sentence-transformers sets padded ones to -1e9)
        v = torch.where(m > 0, h, torch.full_like(h, -1e9)).max(1).values
    return F.normalize(v, p=2, dim=1)


def main():
    os.makedirs(MODEL, exist_ok=True)
    vocab = [l.rstrip("\n") for l in open(os.path.join(WP, "vocab.txt"), encoding="utf-8")]
    vocab_map = {t: i for i, t in enumerate(vocab)}
    CFG["vocab_size"] = len(vocab)
    g = torch.Generator().manual_seed(1414)
    w = make_weights(len(vocab), g)
    save(os.path.join(MODEL, "model.safetensors"), w, {"format": "pt"})
    config = dict(CFG, architectures=["BertModel"], model_type="bert",
                  attention_probs_dropout_prob=0.1, hidden_dropout_prob=0.1,
                  initializer_range=0.02, pad_token_id=0, torch_dtype="float32")
    json.dump(config, open(os.path.join(MODEL, "config.json"), "w"), indent=2)
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize"}],
              open(os.path.join(MODEL, "modules.json"), "w"), indent=2)
    json.dump({"max_seq_length": 32, "do_lower_case": False},
              open(os.path.join(MODEL, "sentence_bert_config.json"), "w"), indent=2)
    os.makedirs(os.path.join(MODEL, "1_Pooling"), exist_ok=True)
    json.dump({"word_embedding_dimension": CFG["hidden_size"], "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(MODEL, "1_Pooling", "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(WP, "tokenizer.json"), os.path.join(MODEL, "tokenizer.json"))
    shutil.copy(os.path.join(WP, "vocab.txt"), os.path.join(MODEL, "vocab.txt"))
    json.dump({"do_lower_case": True, "model_max_length": 512, "tokenize_chinese_chars": True,
               "strip_accents": None, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]",
               "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
               "mask_token": "[MASK]"},
              open(os.path.join(MODEL, "tokenizer_config.json"), "w"), indent=2)

    # Ids as the model is fed: [CLS] pieces [SEP], cut to max_seq_length 32.
    max_len = 32
    ids = []
    for t in TEXTS:
        body = encode(t, vocab_map, CONFIGS["uncased"])[:max_len - 2]
        ids.append([vocab_map["[CLS]"]] + body + [vocab_map["[SEP]"]])
    T = max(len(x) for x in ids)
    batch = torch.zeros(len(ids), T, dtype=torch.long)
    mask = torch.zeros(len(ids), T, dtype=torch.long)
    for i, x in enumerate(ids):
        batch[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    h = bert_forward(w, batch, mask)
    # Each text alone gives the same states as in the padded batch (the reference's own check).
    for i, x in enumerate(ids):
        alone = bert_forward(w, torch.tensor([x]), torch.ones(1, len(x), dtype=torch.long))
        assert torch.allclose(alone[0], h[i, :len(x)], atol=1e-10)
    out = {"hidden": h.float(), "mask": mask.to(torch.int32), "ids": batch.to(torch.int32)}
    for mode in ("mean", "cls", "max"):
        out[f"embed.{mode}"] = pool(h, mask, mode).float()
    save(os.path.join(OUT, "expected.safetensors"), out)
    json.dump({"texts": TEXTS, "ids": ids, "max_seq_length": max_len},
              open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8"), ensure_ascii=False)
    print(f"BERT {CFG['num_hidden_layers']}x{CFG['hidden_size']}, vocab {len(vocab)}, "
          f"{len(TEXTS)} texts (longest {T} tokens)")


if __name__ == "__main__":
    main()
