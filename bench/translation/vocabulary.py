"""The target vocabulary: a sentencepiece model trained on the training targets, as s3prl's
``prepare_gen_fairseq_vocab.py`` trains it (``bench.translation.recipe``).

Training is deterministic (one thread, the targets in list order) and happens in memory; the
model is kept in ``directory`` under a name holding the SHA-256 of the recipe's settings and
the targets, written atomically, so a run with the same training targets reads it back and
any change trains a new one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from bench.data import DataError
from bench.fileio import atomic_write
from bench.translation.recipe import BOS, EOS, PAD, UNK, TranslationRecipe

log = logging.getLogger(__name__)

#: how fairseq's dictionary spells an unknown token in decoded text
UNKNOWN_TEXT = "<unk>"
#: the modules of the ``translation`` extra: vocabulary, BLEU, target normalisation
EXTRA_MODULES = ("sentencepiece", "sacrebleu", "sacremoses")


def require_translation_packages(task: str) -> None:
    """Fail before any work when a package of the ``translation`` extra is missing."""
    from bench.errors import UsageError

    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"{task} needs {', '.join(missing)} (not installed): "
            "pip install 'bench-ssl[translation]' (in a clone: pip install -e '.[translation]')"
        )


class Vocabulary:
    """A trained sentencepiece model with fairseq's special ids and decoding."""

    def __init__(self, model: bytes, digest: str = ""):
        import sentencepiece

        self.model = model
        self.digest = digest or hashlib.sha256(model).hexdigest()
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        specials = {BOS: "<s>", PAD: "<pad>", EOS: "</s>", UNK: "<unk>"}
        for index, piece in specials.items():
            if self._processor.id_to_piece(index) != piece:
                raise DataError(f"sentencepiece model: id {index} is not {piece}")

    def __len__(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """The pieces of ``text`` followed by ``</s>`` (an unknown character: ``<unk>``)."""
        return [*self._processor.encode(text), EOS]

    def decode(self, ids: Sequence[int]) -> str:
        """fairseq's ``Dictionary.string(ids, "sentencepiece")`` as s3prl's ``_decode`` uses
        it: specials dropped, ``<unk>`` spelled out, ``▁`` a space; nothing -> ``<unk>``."""
        pieces = [
            UNKNOWN_TEXT if i == UNK else self._processor.id_to_piece(i)
            for i in ids
            if i not in (BOS, PAD, EOS)
        ]
        text = "".join(pieces).replace(" ", "").replace("\u2581", " ").strip()
        return text or UNKNOWN_TEXT

    def describe(self) -> str:
        return f"sentencepiece, {len(self)} pieces, sha256 {self.digest[:16]}"


def train_model(texts: Sequence[str], recipe: TranslationRecipe) -> bytes:
    """A sentencepiece model of ``texts`` with the recipe's type and size, as bytes."""
    import sentencepiece

    lines = [text for text in texts if text.strip()]
    if not lines:
        raise DataError("no training target to build the vocabulary from")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type=recipe.vocabulary_type,
        vocab_size=recipe.vocabulary_size,
        character_coverage=1.0,
        bos_id=BOS,
        pad_id=PAD,
        eos_id=EOS,
        unk_id=UNK,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def vocabulary_key(texts: Sequence[str], recipe: TranslationRecipe) -> str:
    settings = {"type": recipe.vocabulary_type, "size": recipe.vocabulary_size, "format": 1}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def build_vocabulary(
    texts: Sequence[str], recipe: TranslationRecipe, directory: Path | None, name: str
) -> Vocabulary:
    """The vocabulary of ``texts``: read from ``directory`` when trained before, else trained
    (and kept there when ``directory`` is given)."""
    key = vocabulary_key(texts, recipe)
    path = None if directory is None else Path(directory) / f"{name}-{key[:16]}.model"
    if path is not None and path.is_file():
        try:
            return Vocabulary(path.read_bytes(), key)
        except Exception as error:  # a damaged file: train again and replace it
            log.warning("ignoring unreadable vocabulary %s (%s)", path, error)
    model = train_model(texts, recipe)
    if path is not None:
        atomic_write(path, lambda handle: handle.write(model))
        log.info("vocabulary written to %s", path)
    return Vocabulary(model, key)
