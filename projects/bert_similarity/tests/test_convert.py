"""Conversion of all-MiniLM-L6-v2 checked against independent implementations: keras-hub and HF tokenizers."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.bert_similarity import hub

from .. import convert
from .. import encoder as encoder_lib

keras_hub = pytest.importorskip("keras_hub")  # a test-only dependency (requirements-dev.txt)

SENTENCES = ["In the beginning God created the heaven and the earth.", "Jesus wept.",
             "How do I learn Python in 2026? It's 'easy', they say!", "我爱北京天安门 is a sentence with CJK."]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    hf_dir = convert.default_hf_dir()
    output = str(tmp_path_factory.mktemp("minilm") / "converted")
    report = convert.convert(hf_dir, output)
    return {"hf_dir": hf_dir, "output": output, "report": report}


@pytest.fixture(scope="module")
def reference_inputs(converted):
    preprocessor = hub.load(os.path.join(converted["output"], "preprocessor"))
    return preprocessor(tf.constant(SENTENCES))


def keras_hub_outputs(hf_dir, inputs, exact_gelu=False):
    backbone = keras_hub.models.BertBackbone.from_preset(hf_dir)
    if exact_gelu:  # keras-hub builds every BERT with the tanh GELU; the checkpoint's config says exact
        for i in range(backbone.num_layers):
            layer = backbone.get_layer(f"transformer_layer_{i}")
            layer._feedforward_intermediate_dense.activation = keras.activations.gelu
    return backbone({"token_ids": inputs["input_word_ids"], "padding_mask": inputs["input_mask"],
                     "segment_ids": inputs["input_type_ids"]})


def test_conversion_loads_every_tensor_and_writes_its_report(converted):
    report = json.load(open(os.path.join(converted["output"], "conversion.json")))
    assert report["tensors_loaded"] == 103 and report["parameters"] == 22_713_216
    assert report["check"]["padding_max_abs_difference"] < 1e-4


def test_tokenizer_gives_keras_hub_ids(converted):
    preprocessor = hub.load(os.path.join(converted["output"], "preprocessor"))
    ours = preprocessor.tokenize(tf.constant(SENTENCES)).merge_dims(-2, -1).to_list()
    theirs = keras_hub.models.BertTokenizer.from_preset(converted["hf_dir"])(SENTENCES)
    theirs = theirs.to_list() if hasattr(theirs, "to_list") else theirs
    assert ours == [[int(i) for i in row] for row in theirs]


def test_tokenizer_strips_accents_like_the_hugging_face_tokenizer_the_model_was_trained_with(converted):
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(os.path.join(converted["hf_dir"], "tokenizer.json"))
    reference.no_padding()
    texts = [*SENTENCES, "Café au lait, naïve façade — Ångström!"]
    preprocessor = hub.load(os.path.join(converted["output"], "preprocessor"))
    ours = preprocessor.tokenize(tf.constant(texts)).merge_dims(-2, -1).to_list()
    assert ours == [reference.encode(t).ids[1:-1] for t in texts]  # without [CLS] and [SEP]


def test_converted_encoder_matches_keras_hub_with_the_same_gelu(converted, reference_inputs):
    mask = reference_inputs["input_mask"].numpy().astype(bool)
    layer = hub.HubLayer(os.path.join(converted["output"], "encoder"))
    ours = layer(reference_inputs)
    theirs = keras_hub_outputs(converted["hf_dir"], reference_inputs, exact_gelu=True)
    difference = np.abs(ours["sequence_output"].numpy()[mask] - theirs["sequence_output"].numpy()[mask]).max()
    assert difference < 1e-4, difference
    np.testing.assert_allclose(ours["pooled_output"], theirs["pooled_output"], atol=1e-4)
    assert len(ours["encoder_outputs"]) == 6


def test_encoder_with_keras_hubs_tanh_gelu_matches_stock_keras_hub(converted, reference_inputs):
    config = encoder_lib.BertConfig.from_json(os.path.join(converted["hf_dir"], "config.json"))
    model = encoder_lib.bert_encoder(**{**config.encoder_args(), "activation": encoder_lib.gelu_approximate})
    encoder_lib.load_safetensors(model, os.path.join(converted["hf_dir"], "model.safetensors"),
                                 config.num_attention_heads)
    mask = reference_inputs["input_mask"].numpy().astype(bool)
    ours = model(reference_inputs)["sequence_output"].numpy()[mask]
    theirs = keras_hub_outputs(converted["hf_dir"], reference_inputs)["sequence_output"].numpy()[mask]
    assert np.abs(ours - theirs).max() < 1e-4


def test_converted_encoder_fine_tunes(converted, reference_inputs):
    layer = hub.HubLayer(os.path.join(converted["output"], "encoder"), output_key="pooled_output")
    assert len(layer.trainable_weights) == 103 and not any(":" in w.name for w in layer.weights)
    inference = layer(reference_inputs).numpy()
    assert not np.allclose(layer(reference_inputs, training=True).numpy(), inference)  # dropout is on
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in encoder_lib.INPUT_NAMES}
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    before = layer.trainable_weights[0].numpy().copy()
    model.train_on_batch(dict(reference_inputs), np.ones((len(SENTENCES), 1), "float32"))
    assert not np.allclose(layer.trainable_weights[0].numpy(), before)
