"""PER/WER/CER as s3prl computes them, against jiwer and hand-computed cases; decoding."""

import random

import jiwer
import pytest
import torch

from bench.ctc.decode import greedy_decode
from bench.ctc.text import CHAR_TOKENS, PHONE_TOKENS
from bench.metrics.ctc import character_error_rate, error_rate, word_error_rate, words_of


def test_hand_computed_corpus_level_rate():
    # "a b c" -> "a x c d": one substitution, one insertion; "d e" -> "": two deletions.
    # Corpus level: 4 errors over 5 reference words, not the mean of per-utterance rates.
    assert word_error_rate(["a x c d", ""], ["a b c", "d e"]) == pytest.approx(80.0)
    assert error_rate([["AH0", "B"]], [["AH0", "B", "K"]]) == pytest.approx(100 / 3)
    # "kitten" -> "sitting": the classic distance 3, over 7 reference characters
    assert character_error_rate(["kitten"], ["sitting"]) == pytest.approx(300 / 7)


@pytest.mark.parametrize("seed", range(20))
def test_word_and_character_error_rates_match_jiwer(seed):
    rng = random.Random(seed)
    vocabulary = ["AH", "B", "K", "IY1", "ZH", "S", "T"]
    references, hypotheses = [], []
    for _ in range(rng.randint(1, 12)):
        reference = [rng.choice(vocabulary) for _ in range(rng.randint(1, 9))]
        hypothesis = [w for w in reference if rng.random() > 0.3]  # deletions
        hypothesis = [rng.choice(vocabulary) if rng.random() < 0.2 else w for w in hypothesis]
        for _ in range(rng.randint(0, 2)):  # insertions
            hypothesis.insert(rng.randint(0, len(hypothesis)), rng.choice(vocabulary))
        references.append(" ".join(reference))
        hypotheses.append(" ".join(hypothesis))
    assert word_error_rate(hypotheses, references) == pytest.approx(
        100 * jiwer.wer(references, hypotheses)
    )
    assert character_error_rate(hypotheses, references) == pytest.approx(
        100 * jiwer.cer(references, hypotheses)
    )


def test_error_rate_refuses_mismatched_or_empty_references():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        error_rate([["a"], ["b"]], [["a"]])
    with pytest.raises(ValueError, match="at least one reference token"):
        error_rate([["a"]], [[]])


def test_words_of_character_units():
    assert words_of(list("HELLO|WORLD|")) == ["HELLO", "WORLD"]
    assert words_of(["|", "|"]) == []


def test_greedy_decoding_collapses_repeats_then_drops_blanks_and_eos():
    # frames: blank, AA0 AA0, blank, AA0, eos, B B, (padding beyond the length)
    aa0, b = PHONE_TOKENS.symbols.index("AA0"), PHONE_TOKENS.symbols.index("B")
    path = [0, aa0, aa0, 0, aa0, PHONE_TOKENS.eos, b, b, aa0]
    logits = torch.nn.functional.one_hot(torch.tensor([path]), len(PHONE_TOKENS)).float()
    assert greedy_decode(logits, torch.tensor([8]), PHONE_TOKENS) == [["AA0", "AA0", "B"]]
    # characters: the pad token is not dropped (s3prl's Dictionary.string keeps it)
    h, pad = CHAR_TOKENS.symbols.index("H"), CHAR_TOKENS.symbols.index("<pad>")
    logits = torch.nn.functional.one_hot(torch.tensor([[h, 0, CHAR_TOKENS.eos, pad]]), 32).float()
    assert greedy_decode(logits, torch.tensor([4]), CHAR_TOKENS) == [["H", "<pad>"]]
