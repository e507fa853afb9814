"""Small fake SUPERB corpora in the real layouts, with tones whose pitch encodes the label.

Each builder writes one corpus under ``root`` exactly as its archives unpack (names, list
files, CSVs, label files, trial lists) and returns its folder. The audio is short and the
counts tiny, so the corpus check reports the full-corpus totals as warnings.
"""

from __future__ import annotations

import csv
from pathlib import Path

from _audio import write_tone

from bench.tasks.corpora.speech_commands import KEYWORDS, SILENCE, TEST_DIR, TRAIN_DIR, UNKNOWN


def pitch(index: int) -> float:
    """Distinct, well separated tones (one per class)."""
    return 250.0 * 1.25**index


def build_speech_commands(root: Path, speakers: int = 6, seconds: float = 0.3) -> Path:
    """Two words of unknown, the ten keywords; speaker 0 is dev, speaker 1 is discarded."""
    train, test = root / TRAIN_DIR, root / TEST_DIR
    words = [*KEYWORDS, "bed", "cat"]
    validation, testing = [], []
    for s in range(speakers):
        for w, word in enumerate(words):
            relative = f"{word}/{s:08x}_nohash_0.wav"
            label_index = min(w, len(KEYWORDS))
            write_tone(train / relative, pitch(label_index), seconds, seed=s * 100 + w)
            (validation if s == 0 else testing if s == 1 else []).append(relative)
    (train / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (train / "testing_list.txt").write_text("\n".join(testing) + "\n")
    write_tone(train / "_background_noise_" / "white_noise.wav", pitch(11), 12.0, seed=7)
    for c, label in enumerate([*KEYWORDS, UNKNOWN, SILENCE]):
        for k in range(2):
            write_tone(
                test / label / f"t{k}_nohash_0.wav", pitch(c), seconds, seed=1000 + c * 10 + k
            )
    return root


FSC_INTENTS = [  # (action, object, location)
    ("activate", "lights", "kitchen"),
    ("deactivate", "lights", "bedroom"),
    ("increase", "volume", "none"),
    ("decrease", "heat", "washroom"),
]


def build_fluent_commands(root: Path, per_split: dict[str, int] | None = None) -> Path:
    dataset = root / "fluent_speech_commands_dataset"
    per_split = per_split or {"train": 6, "valid": 2, "test": 2}
    for split, repeats in per_split.items():
        rows = []
        for r in range(repeats):
            for i, (action, obj, location) in enumerate(FSC_INTENTS):
                speaker = f"spk{r % 3}"
                relative = f"wavs/speakers/{speaker}/{split}-{r}-{i}.wav"
                write_tone(dataset / relative, pitch(2 * i), 0.3, seed=r * 10 + i)
                rows.append(
                    [len(rows), relative, speaker, f"{action} {obj}", action, obj, location]
                )
        (dataset / "data").mkdir(parents=True, exist_ok=True)
        with open(dataset / "data" / f"{split}_data.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["", "path", "speakerId", "transcription", "action", "object", "location"]
            )
            writer.writerows(rows)
    return dataset


def build_voxceleb1(
    root: Path, train_speakers: int = 4, test_speakers: int = 2, seconds: float = 1.0
) -> Path:
    """Speakers id10001.. in dev/wav (three videos x two utterances, iden_split 1/1/2/3...),
    test speakers id10270.. in test/wav, a veri_test2.txt over the test speakers."""
    corpus = root / "VoxCeleb1"
    split_lines, test_files = [], []
    speakers = [(f"id{10001 + s}", "dev") for s in range(train_speakers)]
    speakers += [(f"id{10270 + s}", "test") for s in range(test_speakers)]
    for s, (speaker, part) in enumerate(speakers):
        for v in range(3):
            for u in range(2):
                relative = f"{speaker}/video{v}/{u + 1:05d}.wav"
                length = seconds * (2.5 if (v, u) == (0, 0) else 1.0)  # one long utterance each
                write_tone(
                    corpus / part / "wav" / relative, pitch(s), length, seed=s * 10 + v * 2 + u
                )
                split_lines.append(f"{(1, 2, 3)[v]} {relative}")
                if part == "test":
                    test_files.append(relative)
    (corpus / "iden_split.txt").write_text("\n".join(split_lines) + "\n")
    trials = []
    for i, first in enumerate(test_files):
        for second in test_files[i + 1 :]:
            trials.append(f"{int(first.split('/')[0] == second.split('/')[0])} {first} {second}")
    (corpus / "veri_test2.txt").write_text("\n".join(trials) + "\n")
    return corpus


IEMOCAP_LABELS = ("neu", "hap", "exc", "ang", "sad", "fru")


def build_iemocap(root: Path, per_label: int = 3) -> Path:
    """Five sessions; each labels per_label utterances of every label above (fru is left out
    by the reader, exc becomes hap)."""
    corpus = root / "IEMOCAP_full_release"
    emotion_pitch = {"neu": 0, "hap": 2, "exc": 2, "ang": 4, "sad": 6, "fru": 8}
    for session in range(1, 6):
        dialog = f"Ses0{session}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for e, emotion in enumerate(IEMOCAP_LABELS):
            for k in range(per_label):
                name = f"{dialog}_F{e * per_label + k:03d}"
                write_tone(
                    corpus / f"Session{session}/sentences/wav/{dialog}/{name}.wav",
                    pitch(emotion_pitch[emotion]),
                    0.3,
                    seed=session * 100 + e * 10 + k,
                )
                lines += [
                    f"[{k}.0000 - {k}.5000]\t{name}\t{emotion}\t[2.5000, 2.5000, 2.5000]",
                    "C-E1:\tNeutral;\t()",
                    "",
                ]
        label_dir = corpus / f"Session{session}/dialog/EmoEvaluation"
        label_dir.mkdir(parents=True, exist_ok=True)
        (label_dir / f"{dialog}.txt").write_text("\n".join(lines))
        (label_dir / "Categorical").mkdir(exist_ok=True)
    return corpus


def write_s3prl_emotion_meta_data(corpus_root: Path, folder: Path, seed: int = 7) -> dict:
    """s3prl's meta_data/SessionN/train_meta_data.json for a fake IEMOCAP, in a shuffled
    order (s3prl's files list utterances in os.listdir order). Returns test session ->
    the names in file order."""
    import json
    import random

    from bench.tasks.corpora.iemocap import SESSIONS, read_session

    corpus = corpus_root / "IEMOCAP_full_release"
    by_session = {s: read_session(corpus, s) for s in SESSIONS}
    order = {}
    for test in SESSIONS:
        names = [u.name for s in SESSIONS if s != test for u in by_session[s]]
        random.Random(seed + test).shuffle(names)
        order[test] = names
        entries = [
            {"path": f"Session{n[4]}/sentences/wav/{n.rsplit('_', 1)[0]}/{n}.wav", "label": "x"}
            for n in names
        ]
        (folder / f"Session{test}").mkdir(parents=True)
        (folder / f"Session{test}" / "train_meta_data.json").write_text(
            json.dumps({"labels": {}, "meta_data": entries})
        )
    return order
