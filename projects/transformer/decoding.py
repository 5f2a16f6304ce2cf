"""Greedy and beam-search decoding as TensorFlow while-loops, so they run inside `tf.function` and exports.

Each loop encodes the source once and then emits one token per step. With the key/value cache
(`use_cache=True`, the default) a step runs the decoder on the newest token only: its self-attention
reads the keys and values earlier steps left in the cache, and the cross-attention reads the memory's
projections made once. Without the cache a step re-runs the decoder over the whole prefix, which is
what a plain `model(source, prefix)` loop does; the two give the same tokens (tested), and bench.py
measures how much the cache saves.

Outputs are (B, length) int32 ids without the start id, each row ending at its end id and padded with 0.
"""

from __future__ import annotations

import tensorflow as tf

from .tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

NEG_INF = -1e9  # a log-probability that never wins, without inf - inf = nan


def _check_length(model, max_length: int) -> None:
    if not 0 < max_length <= model.max_length:
        raise ValueError(f"decoding max_length={max_length} must be in 1..{model.max_length} (the model's "
                         "positions); raise Transformer max_length to decode longer outputs.")


def _emittable(log_probs: tf.Tensor) -> tf.Tensor:
    """(..., V) scores with padding and the start id ruled out: a hypothesis ends only with the end id.
    (Training masks padding out of the loss, so nothing taught the model not to predict it.)"""
    banned = (tf.range(tf.shape(log_probs)[-1]) == PAD_ID) | (tf.range(tf.shape(log_probs)[-1]) == BOS_ID)
    return tf.where(banned, tf.cast(NEG_INF, log_probs.dtype), log_probs)


def greedy_decode(model, source: tf.Tensor, max_length: int, use_cache: bool = True) -> tf.Tensor:
    """(B, S) source ids -> (B, <= max_length) ids, the most likely token at every step."""
    _check_length(model, max_length)
    memory, memory_mask = model.encode(source, training=False)
    batch = tf.shape(source)[0]
    tokens = tf.fill([batch, 1], BOS_ID)  # (B, i + 1): the start id and the tokens so far
    finished = tf.zeros([batch], tf.bool)
    cache = model.init_cache(memory, max_length) if use_cache else {}

    def step(i, tokens, finished, cache):
        if use_cache:
            logits, cache = model.decode_step(tokens[:, -1], i, cache, memory_mask)  # (B, V)
        else:
            logits = model.decode(tokens, memory, memory_mask, training=False)[:, -1]  # the whole prefix again
        next_token = tf.where(finished, PAD_ID, tf.argmax(_emittable(logits), axis=-1, output_type=tf.int32))
        return i + 1, tf.concat([tokens, next_token[:, None]], 1), finished | (next_token == EOS_ID), cache

    _, tokens, _, _ = tf.while_loop(
        lambda i, tokens, finished, cache: (i < max_length) & ~tf.reduce_all(finished),
        step, (tf.constant(0), tokens, finished, cache),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), finished.shape,
                          tf.nest.map_structure(lambda t: t.shape, cache)))
    return tokens[:, 1:]


def length_penalty(lengths: tf.Tensor, alpha: float) -> tf.Tensor:
    """GNMT's ((5 + length) / 6) ** alpha (Wu et al., 2016): dividing log-probabilities by it favours longer outputs."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def _gather_beams(tensor: tf.Tensor, beams: tf.Tensor, batch: tf.Tensor, beam_size: int) -> tf.Tensor:
    """Rows of a (B * K, ...) tensor reordered by beams (B, K): row (b, k) becomes row (b, beams[b, k])."""
    shaped = tf.reshape(tensor, tf.concat([[batch, beam_size], tf.shape(tensor)[1:]], 0))
    return tf.reshape(tf.gather(shaped, beams, batch_dims=1), tf.shape(tensor))


def beam_search(model, source: tf.Tensor, max_length: int, beam_size: int = 4, alpha: float = 0.6,
                use_cache: bool = True) -> tf.Tensor:
    """(B, S) source ids -> (B, <= max_length) ids, the best of `beam_size` hypotheses kept at every step.

    Beams are ranked by log-probability divided by the length penalty. A finished beam stays in the
    beam with its score, extended by padding at no cost, until every beam of every sentence is done.
    """
    _check_length(model, max_length)
    memory, memory_mask = model.encode(source, training=False)
    batch = tf.shape(source)[0]
    # Every sentence is decoded as K rows: (B, ...) -> (B * K, ...).
    memory = tf.repeat(memory, beam_size, axis=0)
    memory_mask = tf.repeat(memory_mask, beam_size, axis=0)
    tokens = tf.fill([batch * beam_size, 1], BOS_ID)
    # At the start all K rows are the same hypothesis; only the first may expand, or it would fill the beam K times.
    scores = tf.tile(tf.constant([[0.0] + [NEG_INF] * (beam_size - 1)]), [batch, 1])  # (B, K) log-probabilities
    lengths = tf.zeros([batch, beam_size], tf.int32)
    finished = tf.zeros([batch, beam_size], tf.bool)
    cache = model.init_cache(memory, max_length) if use_cache else {}

    def step(i, tokens, scores, lengths, finished, cache):
        if use_cache:
            logits, cache = model.decode_step(tokens[:, -1], i, cache, memory_mask)
        else:
            logits = model.decode(tokens, memory, memory_mask, training=False)[:, -1]
        vocab = tf.shape(logits)[-1]
        log_probs = tf.reshape(_emittable(tf.nn.log_softmax(logits)), [batch, beam_size, vocab])  # (B, K, V)
        # A finished hypothesis has one continuation, padding, at log-probability 0.
        pad_only = tf.where(tf.range(vocab) == PAD_ID, 0.0, NEG_INF)
        log_probs = tf.where(finished[..., None], pad_only, log_probs)
        candidates = scores[..., None] + log_probs  # (B, K, V)
        new_lengths = lengths + tf.cast(~finished, tf.int32)
        ranked = candidates / length_penalty(new_lengths, alpha)[..., None]
        _, best = tf.math.top_k(tf.reshape(ranked, [batch, -1]), k=beam_size)  # (B, K) over K * V
        beams, next_token = best // vocab, tf.cast(best % vocab, tf.int32)
        scores = tf.gather(tf.reshape(candidates, [batch, -1]), best, batch_dims=1)
        lengths = tf.gather(new_lengths, beams, batch_dims=1)
        finished = tf.gather(finished, beams, batch_dims=1) | (next_token == EOS_ID)
        tokens = tf.concat([_gather_beams(tokens, beams, batch, beam_size), tf.reshape(next_token, [-1, 1])], 1)
        if use_cache:  # each surviving hypothesis takes the self-attention cache of the beam it extends
            cache = {"self": tf.nest.map_structure(lambda t: _gather_beams(t, beams, batch, beam_size), cache["self"]),
                     "memory": cache["memory"]}
        return i + 1, tokens, scores, lengths, finished, cache

    _, tokens, scores, lengths, _, _ = tf.while_loop(
        lambda i, tokens, scores, lengths, finished, cache: (i < max_length) & ~tf.reduce_all(finished),
        step, (tf.constant(0), tokens, scores, lengths, finished, cache),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), *[tf.TensorShape([None, beam_size])] * 3,
                          tf.nest.map_structure(lambda t: t.shape, cache)))
    best = tf.argmax(scores / length_penalty(lengths, alpha), axis=-1, output_type=tf.int32)  # (B,)
    tokens = tf.reshape(tokens, [batch, beam_size, -1])
    return tf.gather(tokens, best, batch_dims=1)[:, 1:]


def encode_texts(tokenizer: Tokenizer, texts: tf.Tensor, max_length: int) -> tf.Tensor:
    """[batch] strings -> (B, <= max_length) source ids ending with the end id (truncated if longer), 0-padded."""
    ids = tokenizer(texts)[:, : max_length - 1]
    return tf.concat([ids, tf.fill([ids.nrows(), 1], EOS_ID)], axis=1).to_tensor(PAD_ID)


def translate_texts(model, tokenizer: Tokenizer, texts: tf.Tensor, beam_size: int = 4, alpha: float = 0.6,
                    max_length: int | None = None) -> tf.Tensor:
    """[batch] raw source strings -> [batch] translated strings: tokenize, decode (beam_size 1: greedy), detokenize."""
    max_length = max_length or model.max_length
    source = encode_texts(tokenizer, texts, model.max_length)
    if beam_size > 1:
        ids = beam_search(model, source, max_length, beam_size=beam_size, alpha=alpha)
    else:
        ids = greedy_decode(model, source, max_length)
    return tokenizer.detokenize(ids)
