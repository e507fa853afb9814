"""The QUESST 2014 reader and superb.qbe on small fake databases in the real layout."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
from _records import make_record

from bench.cli import main
from bench.data import DataError
from bench.report.leaderboard import MEASURED, build_leaderboard
from bench.report.references import load_references
from bench.report.results import result_from_record
from bench.task import TASKS
from bench.tasks.corpora.quesst14 import read_ecf, read_rttm, read_tlist
from bench.tasks.demo.quesst import Recording, write_quesst14_tree

REFERENCES = Path(__file__).resolve().parents[1] / "results" / "references"


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(round(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def fake_database(root: Path) -> Path:
    """3 English + 1 Slovak documents; dev: 2 English + 1 Slovak query; eval: 1 English."""
    documents = [
        Recording("quesst14_00001", "nnenglish", tone(1.0, 300)),
        Recording("quesst14_00002", "nnenglish", tone(1.2, 400)),
        Recording("quesst14_00003", "nnenglish", tone(0.8, 500)),
        Recording("quesst14_00004", "slovak", tone(1.0, 600)),
    ]
    queries = {
        "dev": [
            Recording("quesst14_dev_0001", "nnenglish", tone(0.3, 300)),
            Recording("quesst14_dev_0002", "nnenglish", tone(0.3, 400)),
            Recording("quesst14_dev_0003", "slovak", tone(0.3, 600)),
        ],
        "eval": [Recording("quesst14_eval_0001", "nnenglish", tone(0.3, 500))],
    }
    occurrences = {
        "dev": {
            "quesst14_dev_0001": ["quesst14_00001", "quesst14_00003"],
            "quesst14_dev_0002": ["quesst14_00002"],
            "quesst14_dev_0003": ["quesst14_00004"],
        },
        "eval": {"quesst14_eval_0001": ["quesst14_00003"]},
    }
    return write_quesst14_tree(root, documents, queries, occurrences)


def make(root: Path, **options):
    return TASKS.get("superb.qbe")(root, options)


def test_reads_the_english_subset_with_the_whole_ground_truth(tmp_path):
    corpus = fake_database(tmp_path)
    task = make(tmp_path)
    task.prepare()
    assert task.corpus_report.passed
    assert any("a subset?" in w for w in task.corpus_report.warnings)  # 4 of 12,492 documents
    data = task.load()
    data.check("superb.qbe")
    assert [i.key for i in data.splits["documents"]] == [
        "quesst14_00001",
        "quesst14_00002",
        "quesst14_00003",
    ]
    assert [i.key for i in data.splits["dev"]] == ["quesst14_dev_0001", "quesst14_dev_0002"]
    assert data.splits["test"][0].path == corpus / "eval_queries" / "quesst14_eval_0001.wav"
    setup = data.extras["qbe"]
    dev = setup.ground_truth["dev"]
    # the Slovak query stays in the key: scored as a miss, as the official scorer does
    assert dev.terms == ("quesst14_dev_0001", "quesst14_dev_0002", "quesst14_dev_0003")
    assert len(dev.documents) == 4
    assert dev.occurrences["quesst14_dev_0001"] == {"quesst14_00001", "quesst14_00003"}
    assert setup.documents == "documents" and setup.dtw.distance == "cosine_exp"
    assert task.audio_gain_db == -3.0 and task.protocol == "query_by_example"
    everything = make(tmp_path, language="all").load()
    assert len(everything.splits["documents"]) == 4 and len(everything.splits["dev"]) == 3


def test_real_file_formats(tmp_path):
    ecf = tmp_path / "quesst14.ecf.xml"
    ecf.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ecf source_signal_duration="9.1" language="multiple" version="1">\n'
        '  <excerpt audio_filename="Audio/quesst14_00001.wav" channel="1" tbeg="0.000" '
        'dur="4.5" source_type="splitcts"/>\n'
        '  <excerpt audio_filename="quesst14_00002" channel="1" tbeg="0.000" dur="4.6" '
        'source_type="splitcts"/>\n</ecf>\n'
    )
    tlist = tmp_path / "quesst14_dev.tlist.xml"
    tlist.write_text(
        '<termlist ecf_filename="quesst14.ecf.xml" version="1" language="multiple" '
        'encoding="UTF-8">\n<term termid="quesst14_dev_0001"><termtext>x</termtext></term>\n'
        '<term termid="quesst14_dev_0002"><termtext>y</termtext></term>\n</termlist>\n'
    )
    rttm = tmp_path / "quesst14_dev.rttm"
    rttm.write_text(
        "LEXEME quesst14_00002 1 1.230 0.450 quesst14_dev_0001 lex <NA> <NA>\n"
        "LEXEME quesst14_00002 1 3.100 0.400 quesst14_dev_0001 lex <NA> <NA>\n"
        "SPEAKER quesst14_00001 1 0.0 4.5 <NA> <NA> spk <NA>\n"
    )
    documents, terms = read_ecf(ecf), read_tlist(tlist)
    assert documents == ("quesst14_00001", "quesst14_00002")
    assert terms == ("quesst14_dev_0001", "quesst14_dev_0002")
    assert read_rttm(rttm, terms, documents) == {"quesst14_dev_0001": frozenset({"quesst14_00002"})}


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace text in a file, or in every file of a folder."""
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        file.write_text(file.read_text().replace(old, new))


def add_query(corpus: Path, folder: str, key_list: str, name: str) -> None:
    """A listed query with audio that the term list does not hold."""
    soundfile.write(corpus / folder / f"{name}.wav", tone(0.3, 700), 16000)
    with open(corpus / "scoring" / key_list, "a") as handle:
        handle.write(f"quesst14Database/{folder}/{name}.wav nnenglish\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda c: (c / "dev_queries" / "quesst14_dev_0002.wav").unlink(),
            r"language_key_dev.lst wavs \(nnenglish\): 1 of 2 missing, e.g. quesst14_dev_0002",
        ),
        (
            lambda c: (c / "dev_queries" / "quesst14_dev_0003.wav").unlink(),
            r"groundtruth_quesst14_dev: the term list names 1 queries with no audio .*quesst14_dev_0003",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "groundtruth_quesst14_eval" / "quesst14_eval.rttm",
                "quesst14_eval_0001",
                "quesst14_eval_0009",
            ),
            r"quesst14_eval.rttm, line 1: names no query of the term list",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "groundtruth_quesst14_dev" / "quesst14_dev.rttm",
                "LEXEME quesst14_00002",
                "LEXEME quesst14_00099",
            ),
            r"quesst14_dev.rttm, line 3: document quesst14_00099 is not in the ECF",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "groundtruth_quesst14_dev" / "quesst14_dev.rttm",
                " quesst14_dev_0001 lex <NA> <NA>",
                "",
            ),
            r"quesst14_dev.rttm, line 1: a LEXEME line needs",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "groundtruth_quesst14_dev" / "quesst14.ecf.xml", "</ecf>", ""
            ),
            r"quesst14.ecf.xml: not well-formed XML",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "groundtruth_quesst14_dev", "quesst14_00002", "quesst14_00009"
            ),
            r"groundtruth_quesst14_dev: the ECF lacks documents that language_key_utterances.lst "
            r"lists: quesst14_00002",
        ),
        (
            lambda c: add_query(c, "eval_queries", "language_key_eval.lst", "quesst14_eval_0005"),
            r"the term list lacks queries that language_key_eval.lst lists: quesst14_eval_0005",
        ),
        (
            lambda c: (c / "scoring" / "groundtruth_quesst14_dev" / "extra.rttm").write_text(""),
            r"groundtruth_quesst14_dev: needs exactly one \*.rttm .* found extra.rttm, quesst14_dev.rttm",
        ),
        (
            lambda c: replace_in(
                c / "scoring" / "language_key_utterances.lst", " nnenglish\n", "\n"
            ),
            r"language_key_utterances.lst, line 1: expected '<database>/<folder>/<name>.wav <language>'",
        ),
    ],
)
def test_malformed_database_is_an_error_naming_the_file(tmp_path, damage, message):
    damage(fake_database(tmp_path))
    with pytest.raises(DataError, match=message):
        make(tmp_path).prepare()


def test_query_with_no_samples_is_an_error_naming_it(tmp_path):
    corpus = fake_database(tmp_path)
    empty = corpus / "eval_queries" / "quesst14_eval_0001.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 8000)
    task = make(tmp_path)
    task.prepare()
    with pytest.raises(DataError, match=r"audio with no samples: .*quesst14_eval_0001.wav"):
        task.load()


def test_bad_dtw_option_is_refused(tmp_path):
    fake_database(tmp_path)
    with pytest.raises(DataError, match="DTW distance must be one of"):
        make(tmp_path, distance="dot").load()


def test_prepare_says_what_is_missing_and_how_to_get_it(tmp_path, capsys):
    code = main(["prepare", "superb.qbe", "--data-root", str(tmp_path)])
    assert code != 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'quesst14Database'} is missing" in err
    assert "speech.fit.vutbr.cz/files/quesst14Database.tgz" in err


@pytest.mark.slow
def test_run_on_a_fake_database_end_to_end(tmp_path):
    """fbank frames of pure tones: each query's tone is in the documents holding it."""
    fake_database(tmp_path / "data")
    config = tmp_path / "bench.yaml"
    config.write_text(
        f'task_options: {{"superb.qbe": {{stdlist_dir: "{tmp_path / "stdlist"}"}}}}\n'
    )
    argv = [
        "run",
        "--task",
        "superb.qbe",
        "--upstream",
        "fbank_no_cmvn",
        "--data-root",
        str(tmp_path / "data"),
        f"paths.workspace={tmp_path / 'workspace'}",
        "tracking.enabled=false",
        "runtime.progress=false",
        "--config",
        str(config),
    ]
    assert main(argv) == 0
    from bench.records import read_records

    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "superb.qbe" and record.main_metric == "mtwv"
    assert record.higher_is_better
    assert set(record.metrics["test"]) == {"mtwv", "atwv"}
    assert record.selected["layer"] == 0 and record.data["items"]["documents"] == 3
    # dev: the Slovak query is never searched, so at most 2 of the 3 queries can score
    assert 0 < record.metrics["dev"]["mtwv"]["mean"] <= 2 / 3 + 1e-9
    assert (tmp_path / "stdlist" / "test" / "benchmark.stdlist.xml").is_file()
    # the report puts the record in the SUPERB score
    board = build_leaderboard([result_from_record(record)], load_references(REFERENCES))
    assert "superb.qbe" in board.superb_tasks
    mtwv = record.metrics["test"]["mtwv"]["mean"]
    assert board.summaries[(MEASURED, "fbank_no_cmvn")].superb.value == pytest.approx(
        1000 * (mtwv - 0.0058) / (0.0736 - 0.0058)
    )


def test_superb_score_with_qbe_by_hand():
    """QbE's anchors (MTWV x 100: FBANK 0.58, SOTA 7.36): MTWV 0.0397 is halfway, 500;
    with KS at its SOTA (1000) the SUPERB score is 750."""
    records = [
        make_record("mine", "superb.qbe", [0.0397], main_metric="mtwv"),
        make_record("mine", "superb.ks", [96.66], main_metric="accuracy"),
    ]
    board = build_leaderboard([result_from_record(r) for r in records], load_references(REFERENCES))
    score = board.summaries[(MEASURED, "mine")].superb
    assert score.per_task == pytest.approx({"superb.qbe": 500.0, "superb.ks": 1000.0})
    assert score.value == pytest.approx(750.0)


@pytest.mark.slow
def test_demo_qbe_scores_well_above_chance_with_the_default_upstream(tmp_path):
    """demo.qbe alone (not in the demo suite): espeak-ng words in espeak-ng sentences."""
    argv = [
        "run",
        "--task",
        "demo.qbe",
        "--data-root",
        str(tmp_path / "demo"),
        f"paths.workspace={tmp_path / 'workspace'}",
        "tracking.enabled=false",
        "runtime.progress=false",
    ]
    assert main(argv) == 0
    from bench.records import read_records

    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.upstream == "fbank_no_cmvn"
    assert record.score["mean"] > 0.2  # MTWV; detecting nothing scores 0
    assert record.data["items"] == {"dev": 32, "test": 32, "documents": 80}
    # the Slovak queries stay in the average as misses
    assert record.selected["scored_queries"] == {"dev": 34, "test": 34}
