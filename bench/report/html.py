"""The HTML report: one static, self-contained page (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from bench.fileio import atomic_write_text
from bench.report.leaderboard import Leaderboard
from bench.report.plots import layer_heatmap_svg, layer_weights, task_bars_svg
from bench.report.render import TITLE, ReportContext, explanation
from bench.report.superb15 import JOIN, has_view, superb15_notes, superb15_table
from bench.report.superb15 import TITLE as SUPERB15_TITLE
from bench.report.tables import DisplayTable, leaderboard_table, references_table

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8rem 0; font-variant-numeric: tabular-nums;
        font-size: 0.8rem; line-height: 1.3; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.25rem; text-align: right; }
td { white-space: nowrap; }
td small { display: block; color: #666; }
table.references { font-size: 0.7rem; }
th { background: #f3f5f8; vertical-align: bottom; font-weight: 600; overflow-wrap: break-word; }
th small { display: block; font-weight: normal; color: #555; }
td:first-child, th:first-child { text-align: left; }
td:first-child, td.text { white-space: normal; overflow-wrap: anywhere; }
td:first-child { min-width: 6rem; }
td.text { text-align: left; min-width: 4.5rem; }
tr.published td { background: #f7f7f7; color: #555; font-style: italic; }
ul.notes { color: #444; font-size: 0.92rem; }
figure { margin: 1.2rem 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1rem; }
"""


#: columns of words rather than numbers: they wrap, so that the table fits its box
TEXT_COLUMNS = ("source",)
#: shown as a small line under the upstream's name rather than as a column of its own
UNDER_UPSTREAM = "protocol"


def to_html(board: Leaderboard, context: ReportContext) -> str:
    body = [
        f"<header><h1>{escape(TITLE)}</h1>",
        f'<p class="meta">Generated {escape(context.generated_at)} from '
        f"{escape('; '.join(context.inputs))}.</p></header>",
        '<section id="leaderboard"><h2>Leaderboard</h2>',
        _table(leaderboard_table(board), "leaderboard")
        if board.upstreams
        else "<p>No measured results.</p>",
        '<ul class="notes">'
        + "".join(f"<li>{escape(line)}</li>" for line in explanation(board))
        + "</ul>",
        "</section>",
        _task_plots(board),
        _layer_plots(board),
        _superb15(board),
        '<section id="references"><h2>Published references</h2>',
        "<p>As published (not measured by bench); SUPERB score over the paper's tasks each "
        "source reports.</p>",
        _table(references_table(board), "references"),
        '<ol class="sources">' + "".join(f"<li>{escape(s)}</li>" for s in board.sources) + "</ol>",
        "</section>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(TITLE)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _superb15(board: Leaderboard) -> str:
    """The "SUPERB (15 tasks)" view, when the table has one of its tasks."""
    if not (board.upstreams and has_view(board)):
        return ""
    notes = "".join(f"<li>{escape(line)}</li>" for line in superb15_notes(board))
    return (
        f'<section id="superb15"><h2>{escape(SUPERB15_TITLE)}</h2>'
        f'{_table(superb15_table(board), "superb15")}<ul class="notes">{notes}</ul></section>'
    )


def _table(table: DisplayTable, css_class: str) -> str:
    frame = table.frame
    folded = UNDER_UPSTREAM in frame.columns
    if folded:
        frame = frame.drop(columns=UNDER_UPSTREAM)
    header = "".join(f"<th>{_header_cell(str(c))}</th>" for c in frame.columns)
    if folded:
        header = header.replace("</th>", f"<small>{UNDER_UPSTREAM}</small></th>", 1)
    text_columns = [str(c) in TEXT_COLUMNS for c in frame.columns]
    under = table.frame[UNDER_UPSTREAM] if folded else [None] * len(frame)
    rows = []
    for flag, row, note in zip(table.published, frame.itertuples(index=False), under, strict=True):
        kind = "published" if flag else "measured"
        cells = [
            f'<td class="text">{escape(str(cell))}</td>'
            if wraps
            else f"<td>{_cell(str(cell))}</td>"
            for cell, wraps in zip(row, text_columns, strict=True)
        ]
        if note is not None:
            cells[0] = f"<td>{escape(str(row[0]))} <small>{escape(str(note))}</small></td>"
        rows.append(f'<tr class="{kind}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="{css_class}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _cell(text: str) -> str:
    """A number over its spread or qualifier (``92.17`` over ``± 1.04``): narrow columns.
    A column of several tasks (OOD-ASR's ``a / b / c``) has one value a line."""
    if JOIN in text:
        return "<br>".join(escape(part) for part in text.split(JOIN))
    for separator in (" ± ", " ("):
        head, found, tail = text.partition(separator)
        if found:
            tail = separator.strip() + (" " if separator == " ± " else "") + tail
            return f"{escape(head)} <small>{escape(tail)}</small>"
    return escape(text)


def _header_cell(text: str) -> str:
    """``task metric (unit) ↑`` as the task over a small metric line; long task names may
    break after a dot or an underscore, never inside a word."""
    task, _, label = text.partition(" ")
    if "." in task and label:
        return f"{_breakable(task)}<small>{_breakable(label)}</small>"
    return _breakable(text)


def _breakable(text: str) -> str:
    return escape(text).replace(".", ".<wbr>").replace("_", "_<wbr>")


def _task_plots(board: Leaderboard) -> str:
    figures = [
        f'<figure class="task-bars" data-task="{escape(column.task)}">'
        f"{task_bars_svg(board, column, salt=f'bars-{index}')}"
        f"<figcaption>{escape(column.task)}: {escape(column.label)}. Blue: measured (error bar: "
        "standard deviation over seeds); grey: published.</figcaption></figure>"
        for index, column in enumerate(board.columns)
        if column.metric
    ]
    return _section("tasks", "Per task", figures)


def _layer_plots(board: Leaderboard) -> str:
    figures = []
    for index, column in enumerate(board.columns):
        weights = layer_weights(board, column.task)
        if weights:
            figures.append(
                f'<figure class="layer-heatmap" data-task="{escape(column.task)}">'
                f"{layer_heatmap_svg(column.task, weights, salt=f'layers-{index}')}"
                f"<figcaption>{escape(column.task)}: softmax weights of the learned weighted "
                "sum of layers, per upstream (blank: the upstream has fewer layers; "
                "one-layer upstreams, whose one weight is 1, are left out)."
                "</figcaption></figure>"
            )
    return _section("layers", "Layer weights", figures)


def _section(anchor: str, title: str, figures: list[str]) -> str:
    if not figures:
        return ""
    return f'<section id="{anchor}"><h2>{title}</h2><div class="grid">{"".join(figures)}</div></section>'


def write_html(board: Leaderboard, context: ReportContext, path: Path) -> Path:
    atomic_write_text(Path(path), to_html(board, context))
    return Path(path)
