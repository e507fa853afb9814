"""Reports: leaderboard tables (Markdown, CSV, HTML with plots) from bench's results.

Reports read results (JSON records, MLflow runs) and published reference numbers; they
know nothing of tasks' protocols. ``bench report`` is the command line entry point.
"""


class ReportError(ValueError):
    """The report cannot be made as asked (no results, bad references, disagreeing stores)."""
