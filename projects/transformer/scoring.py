"""Translation scores with sacrebleu: cased BLEU and chrF of detokenized text, and BLEU on the plain form.

The plain form is lower-cased, with ASCII punctuation and the quotes and marks the keras-io recipe also
strips (`RECIPE_MARKS`) deleted, and runs of spaces collapsed: the form the recipe's word-level
standardization gives its training targets, so the best output it can make is the reference's plain form.
It is the one measure on which both models are compared, with both sides made plain.
"""

from __future__ import annotations

import re
import string

import sacrebleu

RECIPE_MARKS = "¿»«„“”"  # deleted by the recipe's standardization besides ASCII punctuation
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation + RECIPE_MARKS)}]")


def plain(text: str) -> str:
    """`text` lower-cased (every script), punctuation deleted as the recipe deletes it, spaces collapsed."""
    return " ".join(_PUNCTUATION.sub("", text.lower()).split())


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenization) and chrF against the raw references, and `bleu_plain`: BLEU with
    hypotheses and references both made `plain`."""
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "bleu_plain": sacrebleu.corpus_bleu([plain(h) for h in hypotheses],
                                                [[plain(r) for r in references]]).score}
