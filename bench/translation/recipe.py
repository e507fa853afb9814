"""s3prl's speech-translation recipe as data (s3prl 0.4.18, ``downstream/speech_translation``).

Facts, each with where it comes from (paths in s3prl unless named fairseq):

- data (``prepare_data/prepare_covo.sh``, ``prepare_data.sh``): CoVoST 2 en->de split lists
  ``covost_v2.en_de.{train,dev,test}.tsv`` (written by CoVoST's ``get_covost_splits.py``:
  columns ``path``, ``sentence``, ``translation``, ``client_id``) over Common Voice 4's English
  ``clips/``; clips that do not exist are skipped (``prepare_data.py``).
- cleaning, every split (``prepare_clean_paired_corpus.py --min 1 --ratio 5``): a pair whose
  transcript or translation holds ``REMOVE`` is left out, as is one with an empty side (in
  whitespace words) or a word-count ratio above 5 either way.
- target text (``prepare_normalize_tsv.py --normalize --lang de``): sacremoses'
  ``MosesPunctNormalizer(lang, pre_replace_unicode_punct=True, post_remove_control_chars=True)``,
  then a space before ``. ? , '`` removed and ``do n't`` -> ``don't``. (The transcript is
  lower-cased and stripped of punctuation too, but ST without the ASR multitask never reads it.)
- vocabulary (``prepare_gen_fairseq_vocab.py --model-type char``): a sentencepiece ``char``
  model of at most 1,000 pieces (``-n`` default), ``character_coverage=1.0``, ids
  ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, trained on the training targets only.
  fairseq's dictionary then holds the same ids; targets are the pieces + ``</s>``, the decoder
  input ``</s>`` + the pieces (fairseq's ``move_eos_to_beginning``); hypotheses and
  references are decoded alike (``expert.py _decode``: pad, ``</s>`` and ``<s>`` dropped,
  ``<unk>`` spelled ``<unk>``, pieces joined, ``▁`` -> space, an empty string -> ``<unk>``).
- head (``config.yaml`` ``modelrc``: ``arch: s2t_transformer``, ``encoder_layers: 3``,
  ``decoder_layers: 3``, ``max_source_positions: 6000``, ``max_target_positions: 1024``; the rest
  fairseq's ``s2t_transformer`` ``base_architecture``): the weighted sum of the upstream layers
  (s3prl's featurizer; ``upstream_rate: -1``, no downsampling) -> fairseq's
  ``Conv1dSubsampler``: two Conv1d of kernel 5, stride 2, padding 2 with a GLU after each
  (1,024 channels in the middle, 512 out) -> x sqrt(512) + sinusoidal positions -> dropout 0.1
  -> 3 pre-norm transformer encoder layers (512, 8 heads, FFN 2,048, ReLU; dropout, attention
  and activation dropout 0.1) -> LayerNorm; decoder: embeddings of 512 (x sqrt(512), padding
  row zero) + sinusoidal positions, dropout, 3 pre-norm decoder layers (self-attention, encoder
  attention, FFN; same sizes), LayerNorm, Linear(512, V) without bias (not tied). Input frames
  beyond 6,000 are cut (s3prl cuts the waveform to ``max_source_positions x upstream_rate``).
- loss (``criterionrc``): fairseq's ``label_smoothed_cross_entropy``, smoothing 0.1
  (``(1 - eps - eps / (V - 1)) nll + eps / (V - 1) sum(-log p)``), summed over the target
  tokens, divided by the batch's sentences (``expert.py``), then by the accumulation (8).
- optimisation (``config.yaml`` ``runner``, ``optimizer``, ``scheduler``; ``runner.py``,
  ``schedulers.py``): Adam, lr 1e-3; ``sqrt_decay_schedule_with_warmup`` with 10,000 warm-up
  updates: the factor is ``step / 10000`` during warm-up and ``1 / sqrt(step)`` after (as the
  code has it: a drop to 0.01 at step 10,000, then a slow decay), applied from the first update
  (LambdaLR: update ``k`` uses the factor of ``k - 1``); 32,000 updates of 8 accumulated
  batches, gradient norm clipped at 10; dev every 2,000 updates, the best dev BLEU kept.
- batches (``datarc.max_tokens: 10000``; fairseq's ``batch_by_size``): items sorted longest
  first (upstream frames, capped at 6,000), cut into consecutive batches of at most 10,000
  padded frames; fairseq shuffles the batch order each epoch.
- decoding (``generatorrc``; fairseq's ``SequenceGenerator`` defaults): beam 20, ``max_len_a``
  0, ``max_len_b`` 400 (at most 400 tokens, then ``</s>`` is forced), ``min_len`` 1 (no
  ``</s>`` first), ``<pad>`` never, scores normalised by length (``lenpen`` 1.0: the summed
  log-probability over the tokens including ``</s>``), a sentence done once it has ``beam``
  finished hypotheses.
- metric (``expert.py _metric``, ``README.md``): ``sacrebleu.corpus_bleu(hyps, [refs],
  tokenize="13a")``: case-sensitive BLEU on detokenised text, dev (selection) and test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: fairseq's special ids, which s3prl's sentencepiece training pins
BOS, PAD, EOS, UNK = 0, 1, 2, 3


@dataclass(frozen=True)
class TranslationRecipe:
    """One speech-translation head and its training, decoding and scoring."""

    # vocabulary
    vocabulary_type: str = "char"
    vocabulary_size: int = 1000
    # head
    conv_channels: int = 1024
    conv_kernels: tuple[int, ...] = (5, 5)
    embed_dim: int = 512
    ffn_dim: int = 2048
    heads: int = 8
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    max_source_positions: int = 6000
    max_target_positions: int = 1024
    # loss and optimisation
    label_smoothing: float = 0.1
    accumulate: int = 8
    grad_clip: float = 10.0
    warmup_steps: int = 10_000
    # decoding
    beam: int = 20
    max_len_a: float = 0.0
    max_len_b: int = 400
    min_len: int = 1
    len_penalty: float = 1.0
    # metric
    bleu_tokenize: str = "13a"

    def __post_init__(self) -> None:
        if self.embed_dim % self.heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of {self.heads} heads")
        if self.beam < 1:
            raise ValueError("beam must be at least 1")

    def lr_factor(self, step: int) -> float:
        """s3prl's ``sqrt_decay_schedule_with_warmup`` factor after ``step`` updates."""
        if step < self.warmup_steps:
            return step / max(1, self.warmup_steps)
        return 1.0 / math.sqrt(max(step, self.warmup_steps))

    def max_length(self, source_frames: int) -> int:
        """The most tokens a hypothesis may have before ``</s>`` is forced (fairseq)."""
        return min(
            int(self.max_len_a * source_frames + self.max_len_b), self.max_target_positions - 1
        )

    def build(
        self, num_layers: int, input_dim: int, vocabulary_size: int, **featurizer: Any
    ) -> Any:
        from bench.translation.model import SpeechToTextTransformer

        return SpeechToTextTransformer(num_layers, input_dim, vocabulary_size, self, **featurizer)


#: ``downstream/speech_translation/config.yaml`` with fairseq's ``s2t_transformer``
S2T_TRANSFORMER = TranslationRecipe()
