"""SUPERB SF: slot metrics (by hand, against jiwer and a restatement of s3prl's metric.py)
and the character-slot targets of s3prl's CharacterTextSlotEncoder."""

import math
import random

import jiwer
import pytest
from _s3prl_slots import s3prl_slot_type_f1, s3prl_slot_value_cer

from bench.ctc.text import SlottedText, SlotTranscription, slot_tokens
from bench.data import DataError, Item
from bench.metrics.slots import parse_slots, slot_type_f1, slot_value_cer

REFERENCES = [
    "PLAY B-artist BOB MARLEY E-artist ON B-service SPOTIFY E-service",
    "WHAT IS THE WEATHER",
    "HELLO",
    "B-city PARIS E-city AND B-city ROME E-city",
    "B-date TOMORROW E-date",
]
HYPOTHESES = [
    "PLAY B-artist BOB MARLY E-artist ON SPOTIFY",
    "WHAT IS B-city PARIS  E-city",
    "HELO",
    "B-city ROME E-city B-city PARISS E-city",
    "B-date B-time TOMORROW E-date",
]


def test_slot_metrics_by_hand():
    """Per utterance, slot types (hypothesis vs reference) and value errors:

    1. {artist} vs {artist, service}: P = 1, R = 1/2, F1 = 2/3; BOB MARLY vs BOB MARLEY: 1
       error in 10 characters; SPOTIFY has no hypothesis slot: 7 errors in 7.
    2. {city} vs {}: F1 = 0 (the double space counts as one); no reference value.
    3. {} vs {}: F1 = 1.
    4. {city} vs {city}: F1 = 1; PARIS pairs with PARISS (CER 1/5, ROME's is 1): 1 error
       in 5; ROME pairs with ROME: 0 in 4.
    5. {date} vs {date}: F1 = 1; the nested B-time is removed from the hypothesis value:
       0 errors in 8.
    F1 = (2/3 + 0 + 1 + 1 + 1) / 5 = 11/15; CER = 9 / 34.
    """
    assert slot_type_f1(HYPOTHESES, REFERENCES) == pytest.approx(100 * 11 / 15)
    assert slot_value_cer(HYPOTHESES, REFERENCES) == pytest.approx(100 * 9 / 34)
    assert parse_slots(HYPOTHESES[4], clean_values=True) == {"date": ["TOMORROW"]}
    assert parse_slots(HYPOTHESES[4], clean_values=False) == {"date": ["B-time TOMORROW"]}


def random_slot_texts(rng: random.Random, count: int) -> tuple[list[str], list[str]]:
    """Reference and hypothesis texts with slots: values perturbed, slots dropped, added,
    repeated, nested tags, runs of spaces."""
    letters, types = "ABCDEFG '", ["city", "date", "artist", "genre"]

    def word():
        return "".join(rng.choice(letters[:-2]) for _ in range(rng.randint(1, 5)))

    def perturb(value):
        chars = [c for c in value if rng.random() > 0.2]
        chars = [rng.choice(letters) if rng.random() < 0.15 else c for c in chars]
        return "".join(chars) or word()

    references, hypotheses = [], []
    for _ in range(count):
        ref, hyp = [], []
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["word", "slot", "slot"])
            value = " ".join(word() for _ in range(rng.randint(1, 3)))
            if kind == "word":
                ref.append(value)
                hyp.append(perturb(value))
                continue
            slot = rng.choice(types)
            ref.append(f"B-{slot} {value} E-{slot}")
            roll = rng.random()
            if roll < 0.6:
                hyp.append(f"B-{slot} {perturb(value)} E-{slot}")
            elif roll < 0.7:
                nested = rng.choice(types)
                hyp.append(f"B-{slot} B-{nested} {perturb(value)} E-{slot}")
            elif roll < 0.85:
                hyp.append(f"B-{rng.choice(types)} {perturb(value)} E-{rng.choice(types)}")
            else:
                hyp.append(perturb(value))
        if rng.random() < 0.2:
            slot = rng.choice(types)
            hyp.append(f"B-{slot} {word()} E-{slot}")
        references.append(" ".join(ref))
        hypotheses.append(("  " if rng.random() < 0.3 else " ").join(hyp))
    return hypotheses, references


@pytest.mark.parametrize("seed", range(30))
def test_slot_metrics_equal_s3prls_on_random_cases(seed):
    hypotheses, references = random_slot_texts(random.Random(seed), 12)
    assert slot_type_f1(hypotheses, references) == pytest.approx(
        100 * s3prl_slot_type_f1(hypotheses, references)
    )
    if not any(parse_slots(r, clean_values=False) for r in references):
        assert math.isnan(slot_value_cer(hypotheses, references))
        return
    assert slot_value_cer(hypotheses, references) == pytest.approx(
        100 * s3prl_slot_value_cer(hypotheses, references)
    )


@pytest.mark.parametrize("seed", range(10))
def test_slot_value_cer_is_jiwers_cer_of_the_paired_values(seed):
    """With one slot of each type per utterance, every reference value pairs with the one
    hypothesis value of its type (or nothing): the metric is the corpus CER of the pairs."""
    rng = random.Random(seed)
    references, hypotheses, ref_values, hyp_values = [], [], [], []
    for _ in range(rng.randint(1, 8)):
        ref, hyp = [], []
        for slot in rng.sample(["city", "date", "artist"], rng.randint(1, 3)):
            value = " ".join(
                "".join(rng.choice("ABCDE") for _ in range(rng.randint(1, 4)))
                for _ in range(rng.randint(1, 3))
            )
            guess = "".join(c for c in value.replace(" ", "") if rng.random() > 0.25) or "Q"
            ref.append(f"B-{slot} {value} E-{slot}")
            ref_values.append(value)
            if rng.random() < 0.8:
                hyp.append(f"B-{slot} {guess} E-{slot}")
                hyp_values.append(guess)
            else:
                hyp_values.append("")
        references.append(" ".join(ref))
        hypotheses.append(" ".join(hyp))
    expected = 100 * jiwer.cer(ref_values, hyp_values)
    assert slot_value_cer(hypotheses, references) == pytest.approx(expected)


def test_slot_metrics_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        slot_type_f1(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one utterance"):
        slot_value_cer([], [])


# -- targets ------------------------------------------------------------------------------

SLOTS = ("artist", "city")


def test_vocabulary_is_s3prls_character_slot_encoder():
    tokens = slot_tokens(SLOTS)
    # <pad> <eos> <unk>, vocab/character.txt (space, A-Z, '), then B-/E- per slot type
    assert tokens.symbols[:3] == ("<pad>", "<eos>", "<unk>")
    assert "".join(tokens.symbols[3:31]) == " ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
    assert tokens.symbols[31:] == ("B-artist", "E-artist", "B-city", "E-city")
    assert (tokens.blank, tokens.eos) == (0, 1) and len(tokens) == 35
    # SUPERB's slots.txt holds 39 slot types after O: 109 outputs
    assert len(slot_tokens([f"s{i}" for i in range(39)])) == 109


def test_targets_are_s3prls_encoding():
    """s3prl's encode: '.' left out (and no space after it), '&' spelled AND, a tag where
    the type changes, a space after every word but the last, unknown characters <unk>."""
    transcription = SlotTranscription(slot_tokens(SLOTS))
    words = ("PLAY", "BOB", "MARLEY", "&", "CO", ".", "IN", "NÎCE")
    tags = ("O", "artist", "artist", "artist", "O", "O", "O", "city")
    units = transcription.units(SlottedText(words, tags))
    assert (
        transcription.text(units)
        == "PLAY B-artist BOB MARLEY AND E-artist CO IN B-city N<unk>CE E-city"
    )
    assert units[:7] == ["P", "L", "A", "Y", " ", "B-artist", "B"]
    ids = transcription.tokens.encode(units)
    assert ids[-1] == 1 and transcription.tokens.decode(ids) == units
    # one-word slots open and close on the same word; two slots of one type side by side
    # are one slot (s3prl compares neighbouring tags only)
    assert (
        transcription.text(transcription.units(SlottedText(("PARIS", "ROME"), ("city", "city"))))
        == "B-city PARIS ROME E-city"
    )


def test_scores_are_the_slot_metrics_of_the_decoded_texts():
    transcription = SlotTranscription(slot_tokens(SLOTS))
    reference = transcription.units(SlottedText(("TO", "PARIS"), ("O", "city")))
    hypothesis = transcription.units(SlottedText(("TO", "PARS"), ("O", "city")))
    scores = transcription.scores([hypothesis, []], [reference, reference])
    assert scores == {"slot_f1": pytest.approx(50.0), "slot_cer": pytest.approx(100 * 6 / 10)}


def test_unknown_slot_types_are_refused_with_the_utterances():
    transcription = SlotTranscription(slot_tokens(SLOTS))
    items = [
        Item("Ivy-1", None, SlottedText(("GO", "HOME"), ("O", "place"))),
        Item("Ivy-2", None, SlottedText(("GO",), ("O",))),
    ]
    with pytest.raises(DataError, match=r"1 slot types of train .*: place; e\.g\. in Ivy-1"):
        transcription.check(items, "train")
