"""Benchmark of the dashboard's slider latency: how long a page takes to re-render after a slider move.

Issue 4 asks that a slider move re-render in ≤ 2 s on the demo zoo on CPU. This drives the real pages with
Streamlit's AppTest (in process, no browser) on a pool (default zoo-8, built first if missing), after a warm-up
that builds the SVD cache and the zero-shot / fine-tuned reference accuracies, and times ``.run()`` after moving a
slider to a value not seen before (so the merge and the evaluation really run). AppTest reruns the whole page
script, while a browser reruns only the slider's ``st.fragment``: the figures are an upper bound of the server
time; the browser adds its own drawing. Prints one ``name: value`` line per figure:

    svd_cache_build_s                   building the pool's SVD cache from scratch (one-time)
    first_render_merge_lab_s            first visit of the merge lab (references evaluated once per pool)
    merge_lab_k_frac_move_ms            median re-render after a new TSV-M k fraction (merge + evaluate 3 methods)
    merge_lab_alpha_move_ms             median re-render after a new Task Arithmetic α (alpha-only fast path)
    merge_lab_common_frac_move_ms       median re-render after a new Iso-CTS common fraction
    spectra_beta_move_ms                median re-render after a new β (TA → Iso-C interpolation)
    spectra_k_frac_move_ms              median re-render after a new TSV-M k fraction on the Spectra page
    interference_k_frac_move_ms         median re-render after a new STI rank fraction (every layer's STI)
    slowest_move_ms                     the slowest single move measured above
    slowest_move_over_budget            slowest_move_ms / 2000 (goal ≤ 1)

    python bench/dashboard.py [--pool zoo-8] [--moves 4] [--threads N] [--keep-results]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = str(ROOT / "app.py")


def _moves(start: float, step: float, n: int, low: float, high: float) -> list[float]:
    """n values not visited before, walking from ``start`` by ``step`` inside [low, high]."""
    values, v = [], start
    while len(values) < n:
        v = round(v + step, 6)
        if v > high:
            v, step = high, -abs(step)
            continue
        if v < low:
            break
        values.append(v)
    return values


def _time_moves(at: Any, key: str, values: list[float]) -> list[float]:
    times = []
    for value in values:
        widget = at.slider(key=key)
        widget.set_value(value)
        t0 = time.perf_counter()
        at.run()
        times.append(1000 * (time.perf_counter() - t0))
        if at.exception:
            raise RuntimeError(f"{key}={value}: {[e.value for e in at.exception]}")
        if at.error:
            raise RuntimeError(f"{key}={value}: {[e.value for e in at.error]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="zoo-8", help="pool spec (default zoo-8, the demo zoo)")
    parser.add_argument("--moves", type=int, default=4, help="slider moves per figure (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the app's choice, $SPECTRAL_TORCH_THREADS or half the cores)")
    parser.add_argument("--keep-results", action="store_true",
                        help="reuse the SVD cache and results store in cache/ (default: fresh temporary ones, so "
                             "every slider value really merges and evaluates)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ["SPECTRAL_DEFAULT_POOL"] = args.pool

    from streamlit.testing.v1 import AppTest

    from spectral.app_state import configure_torch_threads, get_workspace
    from spectral.progress import tqdm_progress

    threads = configure_torch_threads(args.threads)
    if args.threads is not None:
        os.environ["SPECTRAL_TORCH_THREADS"] = str(threads)  # app.py reads it on every run
    ws = get_workspace(args.pool, device="cpu")  # the workspace the pages get (same process, same key)
    if not args.keep_results:  # SVD factors and results store in a fresh folder; the zoo stays in cache/zoo
        ws.cache_dir = tempfile.mkdtemp(prefix="spectral-bench-")
    with tqdm_progress(f"opening {args.pool}") as progress:
        ws.open(progress)
    t0 = time.perf_counter()
    ws.engine.build_cache()  # type: ignore[union-attr]
    cache_s = time.perf_counter() - t0

    results: dict[str, float] = {"svd_cache_build_s": cache_s}
    all_moves: list[float] = []

    def page(path: str) -> Any:
        at = AppTest.from_file(APP, default_timeout=600)
        at.session_state["device"] = "cpu"
        at.run()
        at.switch_page(path)
        t = time.perf_counter()
        at.run()
        if at.exception or at.error:
            raise RuntimeError(f"{path}: {[e.value for e in at.exception] + [e.value for e in at.error]}")
        return at, time.perf_counter() - t

    def record(name: str, times: list[float]) -> None:
        results[name] = statistics.median(times)
        all_moves.extend(times)
        print(f"# {name}: " + ", ".join(f"{t:.0f}" for t in times), file=sys.stderr)

    at, first = page("pages/merge_lab.py")
    results["first_render_merge_lab_s"] = first
    T = len(ws.task_names)
    n = args.moves
    record("merge_lab_k_frac_move_ms", _time_moves(at, "ml_tsv_m_k_frac", _moves(round(1 / T, 3), 0.015, n, 0.005, 1)))
    record("merge_lab_alpha_move_ms", _time_moves(at, "ml_task_arithmetic_alpha", _moves(0.3, 0.05, n, 0.0, 3.0)))
    record("merge_lab_common_frac_move_ms", _time_moves(at, "ml_iso_cts_common_frac", _moves(0.8, -0.03, n, 0, 1)))

    at, _ = page("pages/spectra.py")
    record("spectra_beta_move_ms", _time_moves(at, "sp_beta", _moves(0.5, 0.05, n, 0.0, 1.0)))
    record("spectra_k_frac_move_ms", _time_moves(at, "sp_tsv_m_k_frac", _moves(round(1 / T, 3), 0.02, n, 0.005, 1)))

    at, _ = page("pages/interference.py")
    at.toggle(key="if_kdefault").set_value(False).run()
    record("interference_k_frac_move_ms", _time_moves(at, "if_kfrac", _moves(round(1 / T, 3), 0.02, n, 0.005, 1)))

    results["slowest_move_ms"] = max(all_moves)
    results["slowest_move_over_budget"] = max(all_moves) / 2000.0
    layers = len(ws.taskset.matrix_keys)  # type: ignore[union-attr]
    print(f"# pool {args.pool}: {T} tasks, {layers} matrix layers, torch threads {threads}, "
          f"{n} moves per slider (AppTest full-script reruns: an upper bound of a fragment rerun)")
    for name, value in results.items():
        print(f"{name}: {value:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
