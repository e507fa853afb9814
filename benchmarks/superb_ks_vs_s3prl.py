"""bench against s3prl on SUPERB keyword spotting: one machine, one fake corpus, one run.

Builds a Speech Commands v0.01 tree in the real layout (validation and testing lists,
background noise, the separate test set) with synthetic 1 s clips (a harmonic tone per
class in noise), then for each upstream:

- bench: ``bench run --task superb.ks`` end to end (extraction, the task's learning-rate
  sweep with its schedule and early stopping, test), timed as a subprocess;
- s3prl 0.4.18 (its own venv, ``--s3prl-python``): its Speech Commands downstream expert
  and featurizer driven by a loop that mirrors ``run_downstream.py -m train``'s inner
  loop (frozen upstream forward, weighted sum, expert forward, backward, gradient clipping
  1, Adam 1e-4, batch 32 from the expert's balanced sampler). It runs ``--s3prl-steps``
  steps, times them, times one dev and one test evaluation, and PROJECTS s3prl's default
  schedule: 200,000 steps plus an evaluation of dev and test every 5,000 steps (its
  config.yaml's ``eval_step``), for each learning rate of the same grid bench sweeps. The
  projection is printed as such.

Upstreams: ``fbank`` (bench's and s3prl's own FBANK baselines) and a HuBERT-Base-size model
with random weights (transformers ``HubertModel(HubertConfig())`` saved to a folder; bench
loads the folder; s3prl's ``hubert`` upstream needs a fairseq checkpoint, so the s3prl side
wraps the same transformers model as an upstream of s3prl's featurizer and expert).

Usage (s3prl needs torch 2.8 + torchaudio 2.8 and catalyst in its own venv)::

    python benchmarks/superb_ks_vs_s3prl.py --s3prl-python /work/venv-s3prl/bin/python

It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog")
RATE = 16_000
LR_GRID_SIZE = 5  # superb.ks sweeps five learning rates; s3prl is projected for as many
S3PRL_STEPS, S3PRL_EVAL_EVERY = 200_000, 5_000


def clip(word_index: int, rng: np.random.Generator) -> np.ndarray:
    """One second: a harmonic tone (pitch by word) at a random onset and level, in noise."""
    t = np.arange(RATE) / RATE
    f0 = 180.0 * 1.12**word_index * rng.uniform(0.97, 1.03)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
    envelope = np.zeros(RATE)
    start = int(rng.integers(0, RATE // 3))
    envelope[start : start + RATE // 2] = np.hanning(RATE // 2)
    return 0.3 * rng.uniform(0.4, 1.0) * tone * envelope + 0.02 * rng.standard_normal(RATE)


def write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.clip(audio, -1, 1).astype(np.float32), RATE, subtype="PCM_16")


def build_tree(root: Path, speakers: int, seed: int = 0) -> None:
    """speakers x 14 words in the train archive (10% dev, 10% discarded), 3 test clips per class."""
    rng = np.random.default_rng(seed)
    train, test = root / "speech_commands_v0.01", root / "speech_commands_test_set_v0.01"
    words = (*KEYWORDS, *UNKNOWN_WORDS)
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for s in range(speakers):
        for w, word in enumerate(words):
            relative = f"{word}/{s:08x}_nohash_0.wav"
            write(train / relative, clip(w, rng))
            if s % 10 == 0:
                lists["validation"].append(relative)
            elif s % 10 == 1:
                lists["testing"].append(relative)
    for name, entries in lists.items():
        (train / f"{name}_list.txt").write_text("\n".join(entries) + "\n")
    for i in range(3):
        write(
            train / "_background_noise_" / f"noise_{i}.wav", 0.05 * rng.standard_normal(20 * RATE)
        )
    for w, word in enumerate(words):
        label = word if word in KEYWORDS else "_unknown_"
        for k in range(3 * speakers // 40 + 1):
            write(test / label / f"t{w}{k:04d}_nohash_0.wav", clip(w, rng))
    for k in range(3 * speakers // 40 + 1):
        write(test / "_silence_" / f"s{k:04d}_nohash_0.wav", 0.05 * rng.standard_normal(RATE))


def save_random_hubert(folder: Path) -> None:
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(folder)


def run_bench(data: Path, upstream: str, workspace: Path, seeds: str) -> dict:
    command = [
        sys.executable, "-m", "bench", "run", "--task", "superb.ks", "--upstream", upstream,
        "--data-root", str(data), f"paths.workspace={workspace}", "tracking.enabled=false",
        f"probe.seeds=[{seeds}]", "runtime.progress=false",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    (record_file,) = workspace.glob("records/*/superb.ks.json")
    record = json.loads(record_file.read_text())
    return {
        "wall_s": wall,
        "extract_s": record["timings"]["extract_s"],
        "probe_s": record["timings"]["probe_s"],
        "test_accuracy": record["metrics"]["test"]["accuracy"]["mean"],
        "lr": record["selected"]["lr"],
    }


S3PRL_DRIVER = r'''
import json, sys, time
import torch
from torch import nn

config = json.loads(sys.argv[1])
torch.manual_seed(0)
from s3prl.downstream.speech_commands.expert import DownstreamExpert
from s3prl.upstream.interfaces import Featurizer


class HFUpstream(nn.Module):
    """A transformers encoder as an s3prl upstream: every hidden state, 320x downsampling."""

    def __init__(self, folder):
        super().__init__()
        from transformers import HubertModel
        self.model = HubertModel.from_pretrained(folder)

    def get_downsample_rates(self, key):
        return 320

    def forward(self, wavs):
        padded = nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        return {"hidden_states": list(self.model(padded, output_hidden_states=True).hidden_states)}


if config["upstream"] == "fbank":
    import s3prl.hub as hub
    upstream = hub.fbank()
else:
    upstream = HFUpstream(config["upstream"])
upstream.eval()
featurizer = Featurizer(upstream, "hidden_states", upstream_device="cpu")
expert = DownstreamExpert(
    featurizer.output_dim,
    {
        "datarc": {
            "speech_commands_root": config["train_root"],
            "speech_commands_test_root": config["test_root"],
            "num_workers": config["workers"],
            "batch_size": 32,
        },
        "modelrc": {"projector_dim": 256, "select": "UtteranceLevel", "UtteranceLevel": {"pooling": "MeanPooling"}},
    },
    config["expdir"],
)
trainable = list(featurizer.parameters()) + list(expert.parameters())
optimizer = torch.optim.Adam(trainable, lr=1e-4)


def step_batches(mode):
    for wavs, labels, names in expert.get_dataloader(mode):
        wavs = [torch.as_tensor(w, dtype=torch.float32) for w in wavs]
        with torch.no_grad():
            hidden = upstream(wavs)
        yield wavs, featurizer(wavs, hidden), labels, names


def evaluate(mode):
    started = time.perf_counter()
    records = {"loss": [], "acc": [], "filename": [], "predict": [], "truth": []}
    expert.eval()
    with torch.no_grad():
        for wavs, features, labels, names in step_batches(mode):
            expert(mode, features, labels, names, records)
    expert.train()
    return time.perf_counter() - started, 100.0 * sum(records["acc"]) / len(records["acc"])


def train_steps(count):
    """``count`` whole training steps: data loading, upstream, featurizer, expert, update."""
    done = 0
    while done < count:
        for wavs, features, labels, names in step_batches("train"):
            records = {"loss": [], "acc": [], "filename": [], "predict": [], "truth": []}
            loss = expert("train", features, labels, names, records)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if done >= count:
                return


train_steps(2)  # warm-up: loader workers, first allocations
started = time.perf_counter()
train_steps(config["steps"])
step_s = (time.perf_counter() - started) / config["steps"]
done, count = 2, config["steps"]
dev_s, dev_acc = evaluate("dev")
test_s, test_acc = evaluate("test")
print(json.dumps({"step_s": step_s, "dev_s": dev_s, "test_s": test_s, "test_accuracy": test_acc, "steps_trained": done + count}))
'''


def run_s3prl(python: str, data: Path, upstream: str, steps: int, workdir: Path) -> dict:
    driver = workdir / "s3prl_driver.py"
    driver.write_text(S3PRL_DRIVER)
    expdir = workdir / "s3prl-exp"
    expdir.mkdir(exist_ok=True)
    config = {
        "upstream": upstream,
        "train_root": str(data / "speech_commands_v0.01"),
        "test_root": str(data / "speech_commands_test_set_v0.01"),
        "workers": min(2, os.cpu_count() or 1),
        "expdir": str(expdir),
        "steps": steps,
    }
    output = subprocess.run(
        [python, str(driver), json.dumps(config)], check=True, capture_output=True, text=True
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    evaluations = S3PRL_STEPS // S3PRL_EVAL_EVERY
    per_lr = S3PRL_STEPS * figures["step_s"] + evaluations * (figures["dev_s"] + figures["test_s"])
    figures["projected_per_lr_s"] = per_lr
    figures["projected_sweep_s"] = LR_GRID_SIZE * per_lr
    return figures


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds:,.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3prl-python", required=True, help="python of a venv with s3prl 0.4.18")
    parser.add_argument("--speakers", type=int, default=200, help="x 14 words of 1 s clips")
    parser.add_argument("--s3prl-steps", type=int, default=20, help="s3prl steps timed")
    parser.add_argument("--seeds", default="0", help="bench probe seeds, e.g. 0,1,2")
    parser.add_argument("--upstreams", default="fbank,hubert_base_random")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-vs-s3prl-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    if not (data / "speech_commands_v0.01").is_dir():
        build_tree(data, args.speakers)
    clips = sum(1 for _ in data.rglob("*.wav"))
    print(f"fake Speech Commands tree: {clips} wav files under {data}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rows = []
    for name in args.upstreams.split(","):
        bench_upstream = s3prl_upstream = "fbank"
        if name == "hubert_base_random":
            folder = workdir / "hubert-base-random"
            if not folder.is_dir():
                save_random_hubert(folder)
            bench_upstream = s3prl_upstream = str(folder)
        shutil.rmtree(workdir / f"ws-{name}", ignore_errors=True)
        ours = run_bench(data, bench_upstream, workdir / f"ws-{name}", args.seeds)
        theirs = run_s3prl(args.s3prl_python, data, s3prl_upstream, args.s3prl_steps, workdir)
        rows.append((name, ours, theirs))
        print(f"\n== {name}")
        print(
            f"bench: {hours(ours['wall_s'])} wall (extract {ours['extract_s']:.0f} s, "
            f"probes {ours['probe_s']:.0f} s; {LR_GRID_SIZE} lrs x seeds [{args.seeds}]), "
            f"test accuracy {ours['test_accuracy']:.1f}% (lr {ours['lr']:g})"
        )
        print(
            f"s3prl: {theirs['step_s']:.3f} s/step measured over {args.s3prl_steps} steps; "
            f"dev eval {theirs['dev_s']:.1f} s, test eval {theirs['test_s']:.1f} s"
        )
        print(
            f"s3prl PROJECTED: {hours(theirs['projected_per_lr_s'])} per lr "
            f"(200k steps + 50 dev/test evaluations), {hours(theirs['projected_sweep_s'])} "
            f"for {LR_GRID_SIZE} lrs; test accuracy after {theirs['steps_trained']} steps: "
            f"{theirs['test_accuracy']:.1f}% (not converged)"
        )
        print(
            f"ratio (s3prl projected sweep / bench measured): "
            f"{theirs['projected_sweep_s'] / ours['wall_s']:,.0f}x"
        )
    print("\nsummary")
    for name, ours, theirs in rows:
        print(
            f"  {name:20s} bench {hours(ours['wall_s']):>10s}  s3prl (projected) "
            f"{hours(theirs['projected_sweep_s']):>10s}  ratio "
            f"{theirs['projected_sweep_s'] / ours['wall_s']:,.0f}x  "
            f"bench test acc {ours['test_accuracy']:.1f}%"
        )


if __name__ == "__main__":
    main()
