"""SUPERB-SG ST's pieces: BLEU against sacrebleu and a hand-computed case, fairseq's label
smoothing against PyTorch's, the sentencepiece vocabulary, fairseq's batching, beam search
(beam 1 is greedy decoding; a hand-made decoder where the beam beats greedy), incremental
decoding, and heads that learn a toy translation."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import torch.nn.functional as F

from bench.data import Item, TaskData
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.translation import (
    SpeechTranslation,
    collate_targets,
    token_batches,
)
from bench.task import Schedule, TaskMetadata
from bench.tasks.superb.st import SpeechTranslation as SpeechTranslationTask
from bench.translation import vocabulary as vocabulary_module
from bench.translation.bleu import corpus_bleu
from bench.translation.losses import label_smoothed_nll, sentence_loss
from bench.translation.model import SpeechToTextTransformer, subsampled_lengths
from bench.translation.recipe import BOS, EOS, PAD, UNK, TranslationRecipe
from bench.translation.search import beam_search, constrain
from bench.translation.vocabulary import Vocabulary, build_vocabulary, train_model

TINY = TranslationRecipe(
    conv_channels=32,
    embed_dim=32,
    ffn_dim=64,
    heads=2,
    encoder_layers=1,
    decoder_layers=1,
    dropout=0.0,
    accumulate=1,
    warmup_steps=10,
    beam=3,
    max_len_b=40,
)

# -- BLEU -----------------------------------------------------------------------------------


def test_bleu_of_a_hand_computed_case():
    # n-gram precisions 5/6, 4/5, 3/4, 2/3, equal lengths: BLEU = (1/3) ** (1/4)
    assert corpus_bleu(["a b c d e f"], ["a b c d e g"]) == pytest.approx(100 / 3**0.25)
    assert corpus_bleu(["Das ist gut."], ["Das ist gut."]) == pytest.approx(100)


def test_bleu_is_sacrebleus_case_sensitive_13a_corpus_score():
    hypotheses = ["Der Hund bellt.", "ich mag Käse", "Es regnet heute sehr stark"]
    references = ["Der Hund bellt laut.", "Ich mag Käse.", "Heute regnet es sehr stark."]
    expected = sacrebleu.metrics.BLEU().corpus_score(hypotheses, [references]).score
    assert corpus_bleu(hypotheses, references) == pytest.approx(expected)
    lowered = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(hypotheses, [references]).score
    assert lowered > expected  # "ich"/"Ich" counts: the metric is case-sensitive
    with pytest.raises(ValueError, match="2 hypotheses for 3 references"):
        corpus_bleu(hypotheses[:2], references)


# -- loss -----------------------------------------------------------------------------------


def test_label_smoothing_is_fairseqs():
    # fairseq gives eps / (V - 1) to every other token: PyTorch's eps' / V with eps' = eps V / (V - 1)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, generator=generator)
    targets = torch.tensor([[4, 5, EOS, PAD], [6, EOS, PAD, PAD]])
    loss, nll = label_smoothed_nll(logits, targets, 0.1)
    flat_logits, flat_targets = logits.view(-1, 7), targets.view(-1)
    expected = F.cross_entropy(
        flat_logits, flat_targets, ignore_index=PAD, reduction="sum", label_smoothing=0.1 * 7 / 6
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    plain = F.cross_entropy(flat_logits, flat_targets, ignore_index=PAD, reduction="sum")
    assert float(nll) == pytest.approx(float(plain), rel=1e-5)
    assert float(sentence_loss(logits, targets, 0.1)) == pytest.approx(
        float(expected) / 2, rel=1e-5
    )


def test_s3prls_learning_rate_factor():
    recipe = TranslationRecipe()
    assert recipe.lr_factor(0) == 0 and recipe.lr_factor(5_000) == 0.5
    assert recipe.lr_factor(10_000) == pytest.approx(0.01)  # 1 / sqrt(step) after warm-up
    assert recipe.lr_factor(40_000) == pytest.approx(0.005)


# -- vocabulary -----------------------------------------------------------------------------

TEXTS = ["Das ist ein Baum.", "Ein Clown, ein Dach.", "Baum Dach Clown!"]


def test_vocabulary_pins_fairseqs_ids_and_decodes_as_fairseq():
    vocabulary = Vocabulary(train_model(TEXTS, TranslationRecipe()))
    characters = set("".join(TEXTS).replace(" ", ""))
    assert len(vocabulary) == 4 + 1 + len(characters)  # specials, "▁", every character
    ids = vocabulary.encode("Ein Baum.")
    assert ids[-1] == EOS and BOS not in ids and UNK not in ids
    assert vocabulary.decode(ids) == "Ein Baum."
    assert vocabulary.decode([PAD, *ids, PAD]) == "Ein Baum."
    # a character the training targets lack is <unk>, spelled as fairseq's dictionary spells it
    assert vocabulary.decode(vocabulary.encode("Ein Xylophon")).startswith("Ein <unk>")
    assert vocabulary.decode([EOS]) == "<unk>"  # s3prl: an empty translation reads <unk>


def test_vocabulary_is_deterministic_and_kept_by_digest(tmp_path, monkeypatch):
    first = build_vocabulary(TEXTS, TranslationRecipe(), tmp_path, "superb.st")
    (path,) = tmp_path.glob("superb.st-*.model")
    assert path.read_bytes() == first.model == train_model(TEXTS, TranslationRecipe())

    def refuse(*_args):
        raise AssertionError("trained again")

    monkeypatch.setattr(vocabulary_module, "train_model", refuse)
    again = build_vocabulary(TEXTS, TranslationRecipe(), tmp_path, "superb.st")
    assert again.model == first.model and again.digest == first.digest
    monkeypatch.undo()
    build_vocabulary([*TEXTS, "Neu."], TranslationRecipe(), tmp_path, "superb.st")
    assert len(list(tmp_path.glob("superb.st-*.model"))) == 2


def test_a_missing_package_names_the_extra(monkeypatch):
    from bench.errors import UsageError

    real = vocabulary_module.importlib.util.find_spec
    monkeypatch.setattr(
        vocabulary_module.importlib.util,
        "find_spec",
        lambda name: None if name == "sacrebleu" else real(name),
    )
    with pytest.raises(UsageError, match=r"sacrebleu .*bench-ssl\[translation\]"):
        vocabulary_module.require_translation_packages("superb.st")


# -- batching -------------------------------------------------------------------------------


def test_token_batches_as_fairseqs_batch_by_size():
    # longest first: 10, 7, 7, 3, 2; at most 20 padded frames a batch
    assert token_batches([3, 10, 7, 7, 2], 20) == [[1, 2], [3, 0], [4]]
    assert token_batches([30, 5], 20) == [[0], [1]]  # one long item is its own batch


def test_targets_and_decoder_inputs():
    inputs, targets = collate_targets([[5, 6, EOS], [7, EOS]])
    assert targets.tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    assert inputs.tolist() == [[EOS, 5, 6], [EOS, 7, PAD]]


# -- the head and beam search -----------------------------------------------------------------


def _random_head(vocabulary_size=12, recipe=TINY, seed=0):
    torch.manual_seed(seed)
    return SpeechToTextTransformer(2, 6, vocabulary_size, recipe).eval()


def _frames(lengths, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randn(len(lengths), max(lengths), 2, dim, generator=generator)
    for row, length in enumerate(lengths):
        frames[row, length:] = 0
    return frames, torch.tensor(lengths)


def test_subsampled_lengths_are_fairseqs():
    assert subsampled_lengths(torch.tensor([1, 4, 5, 17]), 2).tolist() == [1, 1, 2, 5]


def test_an_utterance_translates_the_same_alone_and_padded_in_a_batch():
    head = _random_head()
    frames, lengths = _frames([23, 9, 16])
    tokens = torch.tensor([[EOS, 4, 5, 6]] * 3)
    with torch.no_grad():
        batched = head(frames, lengths, tokens)
        alone = head(frames[1:2, :9], lengths[1:2], tokens[1:2])
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-5)


def test_incremental_decoding_equals_full_decoding():
    head = _random_head()
    frames, lengths = _frames([20, 13])
    tokens = torch.tensor([[EOS, 4, 7, 9, 5], [EOS, 8, 8, 4, 6]])
    with torch.no_grad():
        full = torch.log_softmax(head(frames, lengths, tokens), dim=-1)
        memory, padded = head.encode(frames, lengths)
        state = head.start(memory, padded)
        steps = [head.step(tokens[:, t], state) for t in range(tokens.shape[1])]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def _greedy(head, frames, lengths, recipe):
    """Greedy decoding by full teacher-forced forwards (no cache), fairseq's rules."""
    results = []
    for row in range(len(lengths)):
        length = int(lengths[row])
        tokens = [EOS]
        max_length = recipe.max_length(frames.shape[1])
        for step in range(max_length + 1):
            with torch.no_grad():
                logits = head(
                    frames[row : row + 1, :length], lengths[row : row + 1], torch.tensor([tokens])
                )
            log_probs = constrain(torch.log_softmax(logits[:, -1], dim=-1), step, max_length, 1)
            token = int(log_probs.argmax())
            if token == EOS:
                break
            tokens.append(token)
        results.append(tokens[1:])
    return results


def test_beam_one_is_greedy_decoding():
    recipe = dataclasses.replace(TINY, max_len_b=12)
    for seed in range(3):
        head = _random_head(seed=seed)
        frames, lengths = _frames([18, 7, 25], seed=seed)
        expected = _greedy(head, frames, lengths, recipe)
        assert beam_search(head, frames, lengths, recipe, beam=1) == expected


def test_a_batch_is_searched_as_its_utterances_one_by_one():
    recipe = dataclasses.replace(TINY, max_len_b=10)
    head = _random_head(seed=3)
    frames, lengths = _frames([18, 7, 25], seed=3)
    together = beam_search(head, frames, lengths, recipe, beam=3)
    for row, length in enumerate(lengths.tolist()):
        alone = beam_search(head, frames[row : row + 1, :length], lengths[row : row + 1], recipe, 3)
        assert together[row] == alone[0]


class MarkovDecoder:
    """A decoder whose next-token distribution depends on the last token only."""

    def __init__(self, table):
        self.table = torch.log(torch.tensor(table))

    def encode(self, frames, lengths):
        return torch.zeros(len(lengths), 1, 1), torch.zeros(len(lengths), 1, dtype=torch.bool)

    def start(self, memory, padded):
        return self

    def reorder(self, index):
        pass

    def step(self, tokens, state):
        return self.table[tokens].clone()


def test_the_beam_finds_a_better_normalised_hypothesis_than_greedy():
    A, B = 4, 5
    eps = 1e-6
    table = [[eps] * 6 for _ in range(6)]
    table[EOS][A], table[EOS][B] = 0.6, 0.4  # the first token (after the start </s>)
    table[A][EOS], table[A][A], table[A][B] = 0.3, 0.4, 0.3
    table[B][EOS], table[B][A], table[B][B] = 0.99, 0.005, 0.005
    decoder = MarkovDecoder(table)
    recipe = dataclasses.replace(TINY, max_len_b=3)
    frames, lengths = torch.zeros(1, 4, 1, 1), torch.tensor([4])
    # greedy: A, then A while it beats </s>, until </s> is forced after 3 tokens
    assert beam_search(decoder, frames, lengths, recipe, beam=1) == [[A, A, A]]
    # beam 2: "B </s>" scores log(0.4 x 0.99) / 2, better than every continuation of A
    assert beam_search(decoder, frames, lengths, recipe, beam=2) == [[B]]
    # len_penalty 2 favours length: "A B </s>" (log(0.6 x 0.3 x 0.99) / 3^2) beats "B </s>"
    # (log(0.396) / 2^2); the sentence is done with these two finished hypotheses, although
    # "A A B </s>" (log(0.6 x 0.4 x 0.3 x 0.99) / 4^2) would score higher still (fairseq's stop)
    squared = dataclasses.replace(recipe, len_penalty=2.0)
    assert math.log(0.6 * 0.4 * 0.3 * 0.99) / 16 > math.log(0.6 * 0.3 * 0.99) / 9
    assert beam_search(decoder, frames, lengths, squared, beam=2) == [[A, B]]


# -- learning -------------------------------------------------------------------------------

WORDS = {"A": "ja", "B": "so", "C": "da", "D": "um"}


def toy_corpus(count, seed):
    """Items whose frames spell source words (4 frames a letter-word, a prototype each) and
    whose label is the word-by-word translation."""
    rng = np.random.default_rng(seed)
    items = []
    for n in range(count):
        words = list(rng.choice(list(WORDS), size=int(rng.integers(4, 7))))
        items.append(
            Item(f"u{seed}-{n}", Path(f"u{seed}-{n}.wav"), " ".join(WORDS[w] for w in words))
        )
        items[-1] = dataclasses.replace(items[-1], group=" ".join(words))
    return items


class WordFrames:
    """A FeatureStore: each source word its own prototype vector, 8 noisy frames."""

    def __init__(self, items, dim=8):
        rng = np.random.default_rng(1)
        prototypes = {w: rng.standard_normal(dim) for w in WORDS}
        self.arrays = {
            item.key: np.array(
                [
                    prototypes[w] + 0.1 * rng.standard_normal(dim)
                    for w in item.group.split()
                    for _ in range(8)
                ],
                dtype=np.float16,
            )[:, None, :]
            for item in items
        }

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


def test_the_protocol_learns_a_toy_translation():
    splits = {"train": toy_corpus(32, 0), "dev": toy_corpus(8, 1), "test": toy_corpus(8, 2)}
    data = TaskData(splits=splits)

    class Toy(SpeechTranslationTask):
        metadata = TaskMetadata("toy.st", "", "", "", main_metric="bleu")
        schedule = Schedule(lr_grid=(1e-2,))
        translation_recipe = dataclasses.replace(TINY, warmup_steps=40, beam=2)

    settings = ProbeSettings(
        lr_grid=(1e-2,), seeds=(0,), batch_size=600, max_steps=120, eval_every=40, patience=10,
        progress=False,
    )  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=8, frame_rate=50.0)
    outcome = SpeechTranslation().run(
        Toy(None), data, WordFrames(data.all_items()), upstream, settings
    )
    (trial,) = outcome.trials
    curve = [bleu for _, bleu in trial["curve"]]
    # dev BLEU rises as the head learns the toy translation
    assert curve[-1] > curve[0] + 10 and curve[-1] > 30, curve
    assert outcome.metrics["test"]["bleu"].mean > 30, outcome.metrics
    assert outcome.selected["vocabulary"].startswith("sentencepiece")
    assert trial["skipped_updates"] == 0


def test_the_head_loss_drops_on_a_toy_translation():
    items = toy_corpus(32, 0)
    vocabulary = Vocabulary(train_model([str(i.label) for i in items], TINY))
    store = WordFrames(items)
    frames = [torch.from_numpy(a.astype(np.float32)) for a in store.sequences(items)]
    lengths = torch.tensor([len(f) for f in frames])
    padded = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    inputs, targets = collate_targets([vocabulary.encode(str(i.label)) for i in items])
    torch.manual_seed(0)
    head = SpeechToTextTransformer(1, 8, len(vocabulary), TINY)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = sentence_loss(head(padded, lengths, inputs), targets, TINY.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    assert all(math.isfinite(x) for x in losses)


# -- the sweep: lock-step probes, resume -------------------------------------------------------


def _toy_run(lr_grid, checkpoints=None, max_steps=12):
    splits = {"train": toy_corpus(12, 0), "dev": toy_corpus(4, 1), "test": toy_corpus(4, 2)}
    data = TaskData(splits=splits)

    class Toy(SpeechTranslationTask):
        metadata = TaskMetadata("toy.st", "", "", "", main_metric="bleu")
        schedule = Schedule(lr_grid=lr_grid)
        translation_recipe = dataclasses.replace(TINY, warmup_steps=4, beam=2, dropout=0.1)

    settings = ProbeSettings(
        lr_grid=lr_grid, seeds=(0,), batch_size=200, max_steps=max_steps, eval_every=4,
        patience=10, progress=False,
    )  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=8, frame_rate=50.0)
    protocol = SpeechTranslation()
    if checkpoints is not None:
        protocol.use_checkpoints(checkpoints)
    return protocol.run(Toy(None), data, WordFrames(data.all_items()), upstream, settings)


def _curves(outcome):
    return {(t["lr"], t["seed"]): t["curve"] for t in outcome.trials}


def test_probes_in_lock_step_train_as_they_would_alone():
    together = _curves(_toy_run((1e-2, 3e-3)))
    alone = _curves(_toy_run((3e-3,)))
    assert together[3e-3, 0] == alone[3e-3, 0]
    assert together[1e-2, 0] != together[3e-3, 0]


def test_a_killed_sweep_resumes_at_its_last_evaluation(tmp_path, monkeypatch):
    from bench.frames.checkpoint import SweepCheckpoints
    from bench.protocols import translation

    expected = _toy_run((1e-2, 3e-3))
    checkpoints = SweepCheckpoints(tmp_path / "checkpoints", {"run": 1})
    update = translation._LockStepSweep.update

    def killed(self, probes, step):
        if step == 7:  # after the evaluation at step 4 was saved
            raise KeyboardInterrupt
        update(self, probes, step)

    monkeypatch.setattr(translation._LockStepSweep, "update", killed)
    with pytest.raises(KeyboardInterrupt):
        _toy_run((1e-2, 3e-3), checkpoints)
    assert list((tmp_path / "checkpoints").glob("*.pt"))
    monkeypatch.setattr(translation._LockStepSweep, "update", update)
    resumed = _toy_run((1e-2, 3e-3), checkpoints)
    assert _curves(resumed) == _curves(expected)
    assert resumed.metrics["test"]["bleu"].values == expected.metrics["test"]["bleu"].values
    assert not (tmp_path / "checkpoints").exists()  # cleared once the sweep finished
