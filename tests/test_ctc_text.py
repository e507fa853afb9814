"""CTC vocabularies, transcripts to units, and the pronunciation lexicon, as s3prl's."""

from pathlib import Path

import pytest

from bench.ctc.text import (
    CHAR_TOKENS,
    PHONE_TOKENS,
    PHONES,
    CharTranscription,
    PhoneTranscription,
    read_lexicon,
)
from bench.data import DataError, Item

# s3prl 0.4.18 downstream/ctc/vocab/phoneme.txt and downstream/asr/char.dict, verbatim
S3PRL_PHONEMES = (
    "SIL SPN AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH "
    "EH0 EH1 EH2 ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 "
    "OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW0 UW1 UW2 V W Y Z ZH"
)
S3PRL_CHAR_DICT = "| E T A O N I H S R D L U M C W F G Y P B V K ' X J Q Z"


def test_vocabularies_are_s3prls():
    assert " ".join(PHONES) == S3PRL_PHONEMES
    assert len(PHONE_TOKENS) == 74 and PHONE_TOKENS.symbols[:3] == ("<pad>", "<eos>", "<unk>")
    assert (PHONE_TOKENS.blank, PHONE_TOKENS.eos) == (0, 1)
    assert " ".join(CHAR_TOKENS.symbols[4:]) == S3PRL_CHAR_DICT
    assert CHAR_TOKENS.symbols[:4] == ("<s>", "<pad>", "</s>", "<unk>")
    assert len(CHAR_TOKENS) == 32 and (CHAR_TOKENS.blank, CHAR_TOKENS.eos) == (0, 2)


def test_characters_as_s3prls_asr_reader_spells_them():
    transcription = CharTranscription()
    units = transcription.units("HELLO  WORLD'S")
    # s3prl: " ".join(list(text.replace(" ", "|"))) + " |", then fairseq appends </s>
    assert "".join(units) == "HELLO|WORLD'S|"
    ids = CHAR_TOKENS.encode(units)
    assert ids[-1] == CHAR_TOKENS.eos and CHAR_TOKENS.decode(ids) == units
    scores = transcription.scores([list("HELO|WORLD'S|")], [units])
    assert scores == {"wer": pytest.approx(50.0), "uer": pytest.approx(100 / 14)}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_lexicon_first_pronunciation_wins_across_files(tmp_path):
    first = write(
        tmp_path / "a.txt", "HELLO\tHH AH0 L OW1\n\nWORLD W ER1 L D\nHELLO HH EH0 L OW1\n"
    )
    second = write(tmp_path / "b.txt", "WORLD W AO1 L D\nZEBRA Z IY1 B R AH0\n")
    lexicon = read_lexicon([first, second])
    assert lexicon == {
        "HELLO": ("HH", "AH0", "L", "OW1"),
        "WORLD": ("W", "ER1", "L", "D"),
        "ZEBRA": ("Z", "IY1", "B", "R", "AH0"),
    }
    transcription = PhoneTranscription(lexicon)
    assert transcription.units("HELLO ZEBRA") == [
        "HH",
        "AH0",
        "L",
        "OW1",
        "Z",
        "IY1",
        "B",
        "R",
        "AH0",
    ]
    ids = PHONE_TOKENS.encode(transcription.units("HELLO"))
    assert ids == [PHONE_TOKENS.symbols.index(p) for p in ("HH", "AH0", "L", "OW1")] + [1]


def test_lexicon_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"b\.txt, line 2: unknown phones \['AX'\] for 'THE'"):
        read_lexicon([write(tmp_path / "b.txt", "A AH0\nTHE DH AX\n")])
    with pytest.raises(DataError, match=r"missing; it is published at https://huggingface\.co"):
        read_lexicon([tmp_path / "librispeech-lexicon-200k-g2p.txt"])


def test_missing_lexicon_words_are_named_and_counted(tmp_path):
    transcription = PhoneTranscription({"HELLO": ("HH", "AH0", "L", "OW1")})
    items = [
        Item("u1", tmp_path / "u1.flac", "HELLO QUUX"),
        Item("u2", tmp_path / "u2.flac", "QUUX FOO QUUX"),
        Item("u3", tmp_path / "u3.flac", "HELLO"),
    ]
    with pytest.raises(DataError) as error:
        transcription.check(items, "train (train-clean-100)")
    assert str(error.value) == (
        "2 words of train (train-clean-100) are not in the lexicon (4 occurrences in 2 of 3 "
        "utterances): FOO, QUUX; e.g. in u1, u2"
    )


def test_characters_outside_the_vocabulary_are_refused(tmp_path):
    items = [Item("u1", tmp_path / "u1.flac", "ROOM 101")]
    with pytest.raises(
        DataError, match=r"2 characters of test are not in s3prl-char \(3 occurrences.*: 0, 1;"
    ):
        CharTranscription().check(items, "test")
