"""Translation scores with sacrebleu: cased BLEU and chrF of detokenized text, and BLEU on the plain form.

The plain form (lower-cased, ASCII punctuation removed, spaces collapsed) is the only one a word-level
model such as the keras-io recipe outputs, so it is the one measure on which both are compared.
"""

from __future__ import annotations

import re
import string

import sacrebleu

_ASCII_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def plain(text: str) -> str:
    """`text` lower-cased, ASCII punctuation replaced by spaces, runs of spaces collapsed."""
    return " ".join(_ASCII_PUNCTUATION.sub(" ", text.lower()).split())


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenization) and chrF against the raw references, and `bleu_plain`: BLEU with
    hypotheses and references both made `plain`."""
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "bleu_plain": sacrebleu.corpus_bleu([plain(h) for h in hypotheses],
                                                [[plain(r) for r in references]]).score}
