"""Kaldi-style speaker diarization data directories, as s3prl's SUPERB SD reads them
(``downstream/diarization/dataset.py``'s ``KaldiData``; Libri2Mix prepared by
``s3prl/LibriMix``'s ``scripts/prepare_diarization.py``).

Layout (one directory per split, e.g. ``data/train``, ``data/dev``, ``data/test``)::

    <split>/
        wav.scp    "<recording> <audio path>"          (absolute, or relative to <split>/)
        segments   "<segment> <recording> <start> <end>"  speech segments, in seconds
        utt2spk    "<segment> <speaker>"
        reco2dur   "<recording> <duration in seconds>"
        rttm       "SPEAKER <recording> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> ..."
        spk2utt    (optional, not read)

The probe trains on ``segments`` + ``utt2spk`` and its label frames follow ``reco2dur``
(s3prl's dataset); it is scored against ``rttm`` (s3prl's ``score.sh`` passes it to
dscore). Kaldi's piped ``wav.scp`` entries (``cmd |``) are refused: bench runs no shell
commands from data files.

Bad input is an error naming the file and line: a missing file, a malformed line, an id
listed twice, audio that is not there, a segment or turn outside its recording, a segment
whose speaker ``utt2spk`` does not give (an unknown speaker), a turn of a recording
``wav.scp`` does not list, a recording without segments or without reference turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport, quote
from bench.corpus_files import read_text
from bench.data import DataError, Item
from bench.metrics.diarization import RecordingLabels, SpeakerTurn

FILES = {
    "wav.scp": "the audio of each recording",
    "segments": "the speech segments the probe trains on",
    "utt2spk": "the speaker of each segment",
    "reco2dur": "the duration of each recording",
    "rttm": "the reference speaker turns SUPERB scores against",
}
#: how far (s) a segment or turn may end past its recording's duration (rounding)
END_TOLERANCE = 1e-3
HOW_TO_GET = (
    "make Libri2Mix and its diarization directories as s3prl's downstream/docs/superb.md "
    "(section SD) says: clone github.com/s3prl/LibriMix, run generate_librimix_sd.sh, then "
    "scripts/prepare_diarization.py --target_dir DIR --source_dir "
    "<Libri2Mix>/wav16k/max/metadata; DIR then holds train/, dev/ and test/"
)


@dataclass(frozen=True)
class Recording:
    key: str
    path: Path
    labels: RecordingLabels


def _lines(path: Path, fields: int, what: str) -> Iterator[tuple[str, list[str]]]:
    """``(where, fields)`` of each non-empty line with at least ``fields`` fields."""
    if not path.is_file():
        raise DataError(f"{path} is missing ({what})")
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}, line {number}"
        if len(parts) < fields:
            raise DataError(f"{where}: expected {fields} fields, found {len(parts)}")
        yield where, parts


def _number(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not a number") from None


def _table(path: Path, what: str) -> dict[str, tuple[str, str]]:
    """``key value`` lines -> key -> (value, where); a key listed twice is an error."""
    table: dict[str, tuple[str, str]] = {}
    for where, (key, *rest) in _lines(path, 2, what):
        if key in table:
            raise DataError(f"{where}: {key} is listed twice")
        table[key] = (" ".join(rest), where)
    return table


def read_wav_scp(directory: Path) -> dict[str, Path]:
    audio = {}
    for key, (value, where) in _table(directory / "wav.scp", FILES["wav.scp"]).items():
        if value.endswith("|") or value == "-":
            raise DataError(
                f"{where}: {key} is a piped command or stdin ({value!r}); bench reads audio "
                "files only: write the audio to files and list their paths"
            )
        path = Path(value).expanduser()
        audio[key] = path if path.is_absolute() else directory / path
    return audio


def read_durations(directory: Path, recordings: dict[str, Path]) -> dict[str, float]:
    """The durations of the ``wav.scp`` recordings (other ``reco2dur`` lines are ignored)."""
    durations = {}
    for key, (value, where) in _table(directory / "reco2dur", FILES["reco2dur"]).items():
        seconds = _number(value, where, "duration")
        if seconds <= 0:
            raise DataError(f"{where}: recording {key} lasts {seconds} s")
        durations[key] = seconds
    missing = [key for key in recordings if key not in durations]
    if missing:
        raise DataError(f"{directory / 'reco2dur'}: no duration for {quote(missing)}")
    return {key: durations[key] for key in recordings}


def read_segments(directory: Path, durations: dict[str, float]) -> dict[str, list[SpeakerTurn]]:
    """Recording -> its segments with their speakers, in file order."""
    speakers = _table(directory / "utt2spk", FILES["utt2spk"])
    segments: dict[str, list[SpeakerTurn]] = {}
    seen: set[str] = set()
    for where, (segment, recording, start, end, *_) in _lines(
        directory / "segments", 4, FILES["segments"]
    ):
        if segment in seen:
            raise DataError(f"{where}: segment {segment} is listed twice")
        seen.add(segment)
        if recording not in durations:
            raise DataError(f"{where}: segment {segment}: recording {recording} is not in wav.scp")
        onset, offset = _number(start, where, "start"), _number(end, where, "end")
        _check_span(onset, offset, durations[recording], where, f"segment {segment}", recording)
        if segment not in speakers:
            raise DataError(f"{where}: segment {segment} has no speaker in {directory / 'utt2spk'}")
        segments.setdefault(recording, []).append(SpeakerTurn(onset, offset, speakers[segment][0]))
    return segments


def read_rttm(path: Path, durations: dict[str, float]) -> dict[str, list[SpeakerTurn]]:
    """Recording -> its reference turns (``SPEAKER`` lines; ``SPKR-INFO`` lines skipped)."""
    turns: dict[str, list[SpeakerTurn]] = {}
    for where, fields in _lines(path, 9, FILES["rttm"]):
        if fields[0] == "SPKR-INFO":
            continue
        if fields[0] != "SPEAKER":
            raise DataError(f"{where}: expected a SPEAKER line, found {fields[0]!r}")
        recording, speaker = fields[1], fields[7]
        onset = _number(fields[3], where, "onset")
        duration = _number(fields[4], where, "duration")
        if recording not in durations:
            raise DataError(f"{where}: recording {recording} is not in wav.scp")
        if duration <= 0:
            raise DataError(f"{where}: a turn of {duration} s (dscore refuses it)")
        _check_span(onset, onset + duration, durations[recording], where, "turn", recording)
        turns.setdefault(recording, []).append(SpeakerTurn(onset, onset + duration, speaker))
    return turns


def _check_span(
    start: float, end: float, duration: float, where: str, what: str, recording: str
) -> None:
    if start < 0 or end <= start:
        raise DataError(f"{where}: {what} runs from {start} to {end} s")
    if end > duration + END_TOLERANCE:
        raise DataError(
            f"{where}: {what} ends at {end} s, outside recording {recording} ({duration} s)"
        )


def read_kaldi_dir(directory: Path) -> list[Recording]:
    """Every recording of ``wav.scp``, in id order, with its labels (see the module
    docstring for what is refused)."""
    if not directory.is_dir():
        raise DataError(f"{directory} does not exist: expected a Kaldi data directory")
    audio = read_wav_scp(directory)
    durations = read_durations(directory, audio)
    segments = read_segments(directory, durations)
    reference = read_rttm(directory / "rttm", durations)
    missing_audio = [str(path) for path in audio.values() if not path.is_file()]
    if missing_audio:
        raise DataError(
            f"{directory / 'wav.scp'}: {len(missing_audio):,} recordings have no audio file: "
            f"{quote(missing_audio)}"
        )
    recordings = []
    for key in sorted(audio):
        if key not in segments:
            raise DataError(f"{directory / 'segments'}: recording {key} has no segments")
        if key not in reference:
            raise DataError(f"{directory / 'rttm'}: recording {key} has no reference turns")
        unknown = {t.speaker for t in reference[key]} - {s.speaker for s in segments[key]}
        if unknown:
            raise DataError(
                f"{directory / 'rttm'}: recording {key} has turns of {quote(sorted(unknown))}, "
                "a speaker none of its segments has (utt2spk)"
            )
        labels = RecordingLabels(durations[key], tuple(segments[key]), tuple(reference[key]))
        recordings.append(Recording(key, audio[key], labels))
    return recordings


def diarization_items(recordings: list[Recording]) -> list[Item]:
    return [Item(key=r.key, path=r.path, label=r.labels) for r in recordings]


def verify_kaldi_dirs(root: Path, splits: dict[str, str]) -> CorpusReport:
    """Each split's directory read in full (the files are small); every problem is an
    error naming its file and line."""
    report = CorpusReport(f"Kaldi diarization directories ({root})", HOW_TO_GET)
    for split, name in splits.items():
        directory = root / name
        if not report.require_dir(directory, f"the {split} Kaldi data directory"):
            continue
        for file, what in FILES.items():
            report.require_file(directory / file, what)
        if any(not (directory / file).is_file() for file in FILES):
            continue
        try:
            recordings = read_kaldi_dir(directory)
        except DataError as error:
            report.error(str(error))
            continue
        hours = sum(r.labels.duration for r in recordings) / 3600
        report.ok(f"{split} ({name}/): {len(recordings):,} recordings, {hours:.2f} h")
    return report
