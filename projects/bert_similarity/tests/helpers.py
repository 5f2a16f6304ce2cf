"""Small inputs the tests write themselves: a tiny BERT in Hugging Face layout, and pair files in each format."""

from __future__ import annotations

import json
import os

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.basename(PROJECT_DIR)  # "bert_similarity", or the copy's name
CONFIGS = os.path.join(PROJECT_DIR, "configs")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a cat dog sat on mat is big small how do i learn python what best way to cook rice "
         "jesus wept cried lord god said unto him and . , ? ! ' %").split()
CJK = list("我爱北京天安门怎么学习")


def write_vocab(path: str, extra: list[str] = ()) -> list[str]:
    """A WordPiece vocab.txt: special tokens, the test words, continuation pieces, CJK characters."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = [*SPECIAL, *WORDS, *(f"##{c}" for c in letters), *(c for c in letters if c not in WORDS), *CJK, *extra]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    return vocab


def write_tiny_bert(folder: str, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> str:
    """A random 2-layer BERT as Hugging Face saves one: config.json, tokenizer_config.json, model.safetensors,
    vocab.txt."""
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    vocab = write_vocab(os.path.join(folder, "vocab.txt"))
    intermediate, positions = 2 * hidden, 64
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu", "vocab_size": len(vocab),
              "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": intermediate,
              "max_position_embeddings": positions, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:  # what keras-hub's preprocessor reads
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": positions}, f)
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.normal(size=shape) * 0.05).astype(np.float32)

    tensors = {"embeddings.word_embeddings.weight": w(len(vocab), hidden),
               "embeddings.position_embeddings.weight": w(positions, hidden),
               "embeddings.token_type_embeddings.weight": w(2, hidden),
               "embeddings.LayerNorm.weight": 1 + w(hidden), "embeddings.LayerNorm.bias": w(hidden),
               "pooler.dense.weight": w(hidden, hidden), "pooler.dense.bias": w(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[p + name + ".weight"], tensors[p + name + ".bias"] = w(hidden, hidden), w(hidden)
        tensors[p + "intermediate.dense.weight"], tensors[p + "intermediate.dense.bias"] = w(intermediate, hidden), w(
            intermediate)
        tensors[p + "output.dense.weight"], tensors[p + "output.dense.bias"] = w(hidden, intermediate), w(hidden)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + norm + ".weight"], tensors[p + norm + ".bias"] = 1 + w(hidden), w(hidden)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    return folder


QUESTIONS = [("how do i learn python", "what is the best way to learn python", 1),
             ("how do i cook rice", "what is the best way to cook rice", 1),
             ("the cat sat on the mat", "the dog is big", 0),
             ("jesus wept", "jesus cried", 1), ("the lord said unto him", "how do i cook rice", 0),
             ("is the dog big", "is the cat small", 0)]


def write_qqp(path: str, copies: int = 8) -> str:
    """A QQP-format TSV (header, six columns) with `copies` x 6 question pairs."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n")
        for n in range(copies):
            for i, (a, b, label) in enumerate(QUESTIONS):
                suffix = " " + "?!.,"[n % 4] * (n // 4 + 1)  # distinct texts, so the hash split spreads them
                f.write(f"{n * 10 + i}\t{2 * i}\t{2 * i + 1}\t{a}{suffix}\t{b}{suffix}\t{label}\n")
    return path
