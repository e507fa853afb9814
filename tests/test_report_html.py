"""The HTML report: self-contained, and rendered by headless Chromium with its tables and plots.

CI installs Debian's Chromium (``apt-get install -y chromium``); without any Chromium binary
the rendering test is skipped and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from _records import make_record

from bench.report.leaderboard import build_leaderboard
from bench.report.outputs import write_report
from bench.report.references import load_references
from bench.report.render import ReportContext
from bench.report.results import result_from_record

REFERENCES = Path(__file__).resolve().parents[1] / "results" / "references"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def html_report(tmp_path_factory) -> Path:
    records = [
        make_record("alpha", "superb.ks", [89.0, 90.0, 91.0], layer_weights=[0.05, 0.1, 0.6, 0.25]),
        make_record("beta", "superb.ks", [80.0, 82.0], layer_weights=[0.5, 0.3, 0.2]),
        make_record(
            "alpha",
            "hear.esc50",
            [0.7, 0.72],
            main_metric="top1_acc",
            layer_weights=[0.2] * 4 + [0.2],
        ),
        make_record("beta", "hear.esc50", [0.6], main_metric="top1_acc"),
    ]
    board = build_leaderboard([result_from_record(r) for r in records], load_references(REFERENCES))
    context = ReportContext(generated_at="2026-01-01 00:00 UTC", inputs=("hand-made records",))
    out = tmp_path_factory.mktemp("html-report")
    (path,) = write_report(board, context, out, ["html"])
    return path


def test_the_page_is_self_contained(html_report):
    text = html_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), "fetches something"
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert text.count("<svg") == 4  # 2 task bar charts + 2 layer heatmaps


class Elements(HTMLParser):
    """Every element of a page with its ancestors, and the text inside each."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "img",
        "input",
        "link",
        "hr",
        "col",
        "source",
        "wbr",
        "area",
        "base",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict] = []
        self.elements: list[dict] = []

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "ancestors": list(self.stack), "text": []}
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth]["tag"] == tag:
                del self.stack[depth:]
                break

    def handle_data(self, data):
        for element in self.stack:
            element["text"].append(data)

    def find(self, tag, css_class=None, **attrs):
        return [
            e
            for e in self.elements
            if e["tag"] == tag
            and (css_class is None or css_class in e["attrs"].get("class", "").split())
            and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def cells(self, row):
        return [text_of(e) for e in self.find("td") if row in e["ancestors"]]

    @staticmethod
    def inside(element, tag):
        return [e for e in element["ancestors"] if e["tag"] == tag]


def text_of(element) -> str:
    return " ".join("".join(element["text"]).split())


def run_chromium(chromium: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium binary (chromium, chromium-browser, google-chrome); CI installs it "
    "with: apt-get install -y chromium",
)
def test_chromium_renders_the_tables_and_plots(html_report, tmp_path):
    chromium = find_chromium()
    url = html_report.resolve().as_uri()
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url).stdout
    page = Elements()
    page.feed(dom)

    (leaderboard,) = page.find("table", "leaderboard")
    rows = [row for row in page.find("tr") if leaderboard in page.inside(row, "table")]
    measured = {
        cells[0]: cells
        for r in rows
        if r["attrs"].get("class") == "measured"
        for cells in [page.cells(r)]
    }
    published = {
        cells[0]: cells
        for r in rows
        if r["attrs"].get("class") == "published"
        for cells in [page.cells(r)]
    }
    # each upstream's protocol is a small line under its name, not a column of its own
    assert list(measured) == ["alpha fast", "beta fast"]
    assert {"90.00 ± 1.00", "0.710 ± 0.014"} <= set(measured["alpha fast"])
    assert "96.30" in published["hubert_base (published) reference"]
    # one HEAR task measured: no published 19-task HEAR average beside it
    assert not any("†" in cell for cells in published.values() for cell in cells)
    (references,) = page.find("table", "references")
    assert "78.70" in text_of(references)

    for task in ("superb.ks", "hear.esc50"):
        (bars,) = page.find("figure", "task-bars", data_task=task)
        (heatmap,) = page.find("figure", "layer-heatmap", data_task=task)
        for figure in (bars, heatmap):
            assert [e for e in page.find("svg") if figure in page.inside(e, "figure")]
    ks_bars = text_of(page.find("figure", "task-bars", data_task="superb.ks")[0])
    assert "alpha" in ks_bars and "hubert_base (published)" in ks_bars and "96.30" in ks_bars
    ks_heatmap = text_of(page.find("figure", "layer-heatmap", data_task="superb.ks")[0])
    assert "0.60" in ks_heatmap and "softmax weight" in ks_heatmap

    screenshot = tmp_path / "report.png"
    run_chromium(
        chromium, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1400,2000", url
    )
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (2000, 1400)
    # the plots' blue bars are on screen, not just white page and black text
    blue = np.all(np.abs(pixels[..., :3] - np.array([0x3B, 0x6E, 0xA8]) / 255) < 0.02, axis=-1)
    assert blue.sum() > 2_000


def wide_board_html(out: Path) -> Path:
    """Many tasks and long upstream names: the widest leaderboard a suite run makes."""
    names = ["spear_large_speech_audio_v2", "wavlm_base_plus", "/data/ckpts/my-ckpt-step50k"]
    tasks = [
        ("superb.ks", "accuracy"),
        ("superb.ic", "accuracy"),
        ("superb.sid", "accuracy"),
        ("superb.er", "accuracy"),
        ("superb.asv", "eer"),
        ("hear.esc50", "top1_acc"),
        ("hear.gunshot_triangulation", "top1_acc"),
        ("hear.nsynth_pitch_5h", "pitch_acc"),
        ("hear.dcase2016_task2", "event_onset_200ms_fms"),
        ("hear.beijing_opera_percussion", "top1_acc"),
        ("demo.instruments", "top1_acc"),
    ]
    records = [
        make_record(
            name,
            task,
            [0.71, 0.72, 0.74] if metric != "accuracy" else [91.0, 92.5, 93.0],
            main_metric=metric,
            higher_is_better=metric != "eer",
            layer_weights=[0.1] * 10,
        )
        for name in names
        for task, metric in tasks
    ]
    records.append(make_record("fbank_no_cmvn", "superb.ks", [41.0], layer_weights=[1.0]))
    board = build_leaderboard([result_from_record(r) for r in records], load_references(REFERENCES))
    context = ReportContext(generated_at="2026-01-01 00:00 UTC", inputs=("hand-made records",))
    (path,) = write_report(board, context, out, ["html"])
    return path


def test_one_layer_upstreams_get_no_heatmap_row(tmp_path):
    html = wide_board_html(tmp_path).read_text()
    heatmaps = html.split('class="layer-heatmap" data-task="superb.ks"')[1].split("</figure>")[0]
    assert "wavlm_base_plus" in heatmaps and "fbank_no_cmvn" not in heatmaps


MEASURE = """<script>
window.addEventListener("load", () => {
  const boxes = [...document.querySelectorAll(".scroll")].map(
    (box) => box.scrollWidth - box.clientWidth);
  document.body.setAttribute("data-overflow", JSON.stringify({
    page: document.documentElement.scrollWidth - window.innerWidth, boxes}));
});
</script>"""


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium binary (apt-get install chromium)")
def test_the_leaderboard_fits_a_1280_pixel_window(tmp_path):
    """No sideways scroll at 1280 px: not for the page, not inside any table's box."""
    import json

    page = wide_board_html(tmp_path).read_text()
    probe = tmp_path / "measured.html"
    probe.write_text(page.replace("</body>", MEASURE + "</body>"))
    dom = run_chromium(
        find_chromium(),
        tmp_path / "profile",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.resolve().as_uri(),
    ).stdout
    overflow = json.loads(
        re.search(r'data-overflow="([^"]+)"', dom).group(1).replace("&quot;", '"')
    )
    assert overflow["page"] <= 0, overflow
    assert all(extra <= 1 for extra in overflow["boxes"]), overflow
