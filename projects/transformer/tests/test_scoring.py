"""scoring: the plain form both models are compared on, and the three sacrebleu scores."""

import pytest
import sacrebleu

from .. import scoring


def test_plain_form_is_lower_case_with_the_recipes_punctuation_deleted():
    assert scoring.plain("Konnte Datei '%s' nicht öffnen!  (Fehler)") == "konnte datei s nicht öffnen fehler"
    assert scoring.plain("„Drucker“ »%s« – ÄNDERN? E-Mail") == "drucker s – ändern email"  # – is kept: so is it there


def test_case_and_punctuation_cost_bleu_but_not_plain_bleu():
    references = ["Die Datei konnte nicht geöffnet werden.", "Möchten Sie den Ordner löschen?"]
    hypotheses = ["die Datei konnte nicht geöffnet werden", "Möchten Sie den ordner löschen ?"]
    exact = scoring.score(references, references)
    assert exact["bleu"] == pytest.approx(100.0) and exact["bleu_plain"] == pytest.approx(100.0)
    found = scoring.score(hypotheses, references)
    assert found["bleu_plain"] == pytest.approx(100.0) and found["bleu"] < 60.0
    assert found["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
