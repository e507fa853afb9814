"""The LibriSpeech reader and the superb.pr / superb.asr corpus checks on fake trees."""

from pathlib import Path

import pytest
from librispeech_fakes import build_librispeech, write_flac

from bench.data import DataError
from bench.tasks.corpora.librispeech import read_split, verify_librispeech
from bench.tasks.superb.asr import SpeechRecognition
from bench.tasks.superb.pr import PhonemeRecognition


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    splits = {"train-clean-100": 3, "dev-clean": 2, "test-clean": 2}
    return build_librispeech(tmp_path_factory.mktemp("librispeech"), splits)


def test_split_items_in_id_order_with_transcripts(corpus):
    items = read_split(corpus / "LibriSpeech", "train-clean-100")
    assert [item.key for item in items] == [
        "100-10-0000", "100-10-0001", "100-10-0002", "101-11-0000", "101-11-0001", "101-11-0002"
    ]  # fmt: skip
    first = items[0]
    assert first.path == corpus / "LibriSpeech/train-clean-100/100/10/100-10-0000.flac"
    assert first.group == "100"
    line = (first.path.parent / "100-10.trans.txt").read_text().splitlines()[0]
    assert line == f"100-10-0000 {first.label}"


def copy_tree(corpus: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(corpus, target)
    return target


def test_audio_without_transcript_and_empty_transcripts_are_refused(corpus, tmp_path):
    root = copy_tree(corpus, tmp_path / "c") / "LibriSpeech"
    chapter = root / "dev-clean" / "200" / "10"
    write_flac(chapter / "200-10-0007.flac", [0.0] * 1600)
    with pytest.raises(DataError, match=r"1 audio files have no line .*200-10-0007\.flac"):
        read_split(root, "dev-clean")
    report = verify_librispeech(root, ["dev-clean"])
    assert report.errors == ["dev-clean: 1 audio files have no transcript line"]

    (chapter / "200-10-0007.flac").unlink()
    transcript = chapter / "200-10.trans.txt"
    transcript.write_text(
        transcript.read_text().replace("200-10-0001 ", "200-10-0001\n#", 1).split("#")[0]
    )
    with pytest.raises(
        DataError, match=r"1 empty transcripts: 200-10-0001 \(.*200-10\.trans\.txt\)"
    ):
        read_split(root, "dev-clean")


def test_verification_reports_missing_splits_and_subset_counts(corpus):
    report = verify_librispeech(corpus / "LibriSpeech", ["train-clean-100", "dev-other"])
    assert any("dev-other is missing (the unpacked dev-other archive)" in e for e in report.errors)
    assert (
        "train-clean-100 utterances: 6, the full corpus has 28,539 (a subset?)" in report.warnings
    )
    assert "openslr.org/12" in report.render()


def test_pr_prepare_names_the_missing_lexicon_file_and_where_it_is_published(corpus, tmp_path):
    root = copy_tree(corpus, tmp_path / "c")
    (root / "librispeech-lexicon-allothers-g2p.txt").unlink()
    task = PhonemeRecognition(root)
    with pytest.raises(DataError) as error:
        task.prepare()
    message = str(error.value)
    assert f"{root / 'librispeech-lexicon-allothers-g2p.txt'} is missing" in message
    assert "huggingface.co/datasets/s3prl/g2p/raw/main/lexicon/" in message
    assert "200k-g2p.txt is missing" not in message


def test_pr_reads_splits_and_refuses_words_missing_from_the_lexicon(corpus, tmp_path):
    data = PhonemeRecognition(corpus).load()
    assert {split: len(items) for split, items in data.splits.items()} == {
        "train": 6, "dev": 4, "test": 4
    }  # fmt: skip
    root = copy_tree(corpus, tmp_path / "c")
    lexicon = root / "librispeech-lexicon-200k-g2p.txt"
    lexicon.write_text(
        "".join(x + "\n" for x in lexicon.read_text().splitlines() if not x.startswith("BRAVO"))
    )
    with pytest.raises(
        DataError, match=r"1 words of train \(train-clean-100\) are not in the lexicon .*: BRAVO"
    ):
        PhonemeRecognition(root).load()


def test_asr_scores_test_other_only_when_present(corpus, tmp_path):
    assert set(SpeechRecognition(corpus).load().splits) == {"train", "dev", "test"}
    root = copy_tree(corpus, tmp_path / "c") / "LibriSpeech"
    import shutil

    shutil.copytree(root / "test-clean", root / "test-other")
    data = SpeechRecognition(root.parent).load()
    assert set(data.splits) == {"train", "dev", "test", "test_other"}
    assert len(data.splits["test_other"]) == len(data.splits["test"])
