"""Progress bars with an ETA for long work outside training (zero-shot tasks, fine-tuning).

Drawn by rich on stderr, like ``thrifty prepare``'s. A bar is shown only on a terminal and while
thrifty logs at INFO, so pipes, CI logs and ``--quiet`` get the results and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def _wanted(enabled: bool, console: Console) -> bool:
    return (
        enabled and console.is_terminal and logging.getLogger("thrifty").isEnabledFor(logging.INFO)
    )


@contextlib.contextmanager
def progress_bar(
    description: str, total: float, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(steps=1, description=None)``; a no-op when no bar is wanted."""
    console = Console(stderr=True)
    if not _wanted(enabled, console):
        yield lambda steps=1, description=None: None
        return
    stderr = sys.stderr
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    # stdout that is not the terminal (results piped to a file) must not be routed to stderr
    live_stdout = sys.stdout.isatty()
    with (
        Progress(*columns, console=console, redirect_stdout=live_stdout) as bar,
        _logs_above(stderr),
    ):
        task = bar.add_task(description, total=total)

        def advance(steps: float = 1, description: str | None = None) -> None:
            bar.update(task, advance=steps, description=description)

        yield advance


def tracked(items: Iterable[T], description: str, enabled: bool = True) -> Iterator[T]:
    """``items`` one by one under a bar that names the current one."""
    items = list(items)
    with progress_bar(description, len(items), enabled) as advance:
        for item in items:
            advance(0, f"{description} {item}")
            yield item
            advance()


@contextlib.contextmanager
def _logs_above(stderr) -> Iterator[None]:
    """Send log lines that went to the terminal through rich's stderr proxy (installed by the
    open bar), so they print above the bar instead of tearing it."""
    moved = [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.stream is stderr
    ]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(stderr)
