"""Progress callbacks ``progress(i, n, text)`` for terminals (tqdm), shared by the CLI and long-running commands."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def tqdm_progress(desc: str = "") -> Iterator[Any]:
    """A ``progress(i, n, text)`` callback drawing one tqdm bar (re-totalled when n changes)."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def progress(i: int, n: int, text: str) -> None:
        if bar.total != n:
            bar.reset(total=n)
        bar.n = i
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()
