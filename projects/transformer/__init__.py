"""Sequence-to-sequence Transformer for translation (work in progress: data preparation so far)."""
