"""bench.ctc.beam: pyctcdecode's beam search on SUPERB ASR's character outputs, against
greedy decoding and a hand-made language model."""

from __future__ import annotations

import pytest
import torch

from bench.ctc.decode import greedy_decode
from bench.ctc.text import CharTranscription
from bench.data import DataError

pytest.importorskip("pyctcdecode")

from bench.ctc.beam import BeamSearchDecoder, BeamSettings

TOKENS = CharTranscription().tokens


def peaked_logits(paths: list[list[int]], frames: int, margin: float = 8.0) -> torch.Tensor:
    """``[B, T, V]`` logits whose best class per frame is ``paths[b][t]`` (blank after)."""
    logits = torch.zeros(len(paths), frames, len(TOKENS))
    for item, path in enumerate(paths):
        for frame in range(frames):
            best = path[frame] if frame < len(path) else TOKENS.blank
            logits[item, frame, best] = margin
    return logits


def ids(text: str) -> list[int]:
    """Frame labels spelling ``text`` ('|' between words), a blank between letters."""
    path = []
    for unit in text:
        path += [TOKENS.encode([unit])[0], TOKENS.blank]
    return path


def test_beam_search_without_a_language_model_equals_greedy_on_clear_outputs():
    paths = [ids("HELLO|WORLD|"), ids("A|BB|"), ids("SEE|")]
    logits = peaked_logits(paths, frames=30)
    lengths = torch.tensor([30, 12, 20])
    decode = BeamSearchDecoder(TOKENS, BeamSettings(beam_size=4))
    expected = greedy_decode(logits, lengths, TOKENS)
    assert decode(logits, lengths, TOKENS) == expected
    assert expected[0] == [*"HELLO", "|", *"WORLD", "|"]


def test_a_language_model_decides_what_the_acoustics_leave_open(tmp_path):
    pytest.importorskip("kenlm")
    # one word, first letter C, second letter A or O with equal scores: the LM picks
    logits = peaked_logits([ids("CAT|")], frames=8)
    a, o = TOKENS.encode(["A"])[0], TOKENS.encode(["O"])[0]
    logits[0, 2, o] = logits[0, 2, a]
    decoded = {}
    for word in ("CAT", "COT"):
        arpa = tmp_path / f"{word}.arpa"
        other = "COT" if word == "CAT" else "CAT"
        arpa.write_text(  # a bigram model (KenLM needs one): the word likely, the other not
            "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n"
            f"-99\t<s>\t-0.3\n-0.01\t{word}\t-0.3\n-3.0\t{other}\t-0.3\n-1.0\t</s>\n\n"
            f"\\2-grams:\n-0.01\t<s> {word}\n-0.01\t{word} </s>\n\n\\end\\\n"
        )
        decode = BeamSearchDecoder(TOKENS, BeamSettings(beam_size=8, lm_path=str(arpa)))
        decoded[word] = decode(logits, torch.tensor([8]), TOKENS)[0]
    assert decoded == {"CAT": [*"CAT", "|"], "COT": [*"COT", "|"]}


def test_a_missing_language_model_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"lm\.arpa: no such language model file"):
        BeamSearchDecoder(TOKENS, BeamSettings(lm_path=str(tmp_path / "lm.arpa")))


def test_the_asr_task_decodes_greedily_unless_asked():
    from bench.tasks.superb.asr import SpeechRecognition

    assert SpeechRecognition(None).final_decoder(TOKENS) == (greedy_decode, "greedy")
    _, described = SpeechRecognition(None, {"decoder": "beam"}).final_decoder(TOKENS)
    assert described == "pyctcdecode beam search (beam 5, no language model)"
    with pytest.raises(DataError, match="decoder must be greedy or beam"):
        SpeechRecognition(None, {"decoder": "kenlm"}).final_decoder(TOKENS)
