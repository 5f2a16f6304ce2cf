"""The Transformer model through the serialization harness: config, `.keras` round trip, batch sizes."""

import numpy as np

from core import testing

from .. import model as model_lib


def test_transformer_round_trips_through_config_and_keras_files():
    model = model_lib.transformer(vocab_size=40, max_length=8, embed_dim=16, num_heads=2, intermediate_dim=32,
                                  num_encoder_layers=1, num_decoder_layers=2)
    rng = np.random.default_rng(0)
    source = rng.integers(4, 40, size=(3, 6)).astype("int32")
    source[1, 4:] = 0  # padding
    target_in = rng.integers(4, 40, size=(3, 5)).astype("int32")
    testing.check_model(model, {"source": source, "target_in": target_in})
