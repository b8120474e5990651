"""The one progress-bar layout every command uses (rich; transient, so finished bars leave the terminal clean)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(info: bool = False) -> Progress:
    """Description, bar, done/total, time left; ``info=True`` adds a free-text column fed by the task field ``info``
    (e.g. the current loss): ``progress.add_task(name, total=n, info="")``."""
    extra = (TextColumn("{task.fields[info]}"),) if info else ()
    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), *extra, transient=True)  # fmt: skip
