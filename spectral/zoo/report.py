"""How a pool compares to real fine-tunes: the four properties the demo zoos are designed to have.

The CLIP zoo is compared with CLIP ViT-B/32 × 8 tasks, the language zoo ``lm-zoo-7`` with GPT-2 × 7 GLUE tasks
(AdaRank Table 3; scores are accuracy, CoLA's Matthews correlation, "zero-shot" is the base body with each
fine-tune's own head): :data:`PROFILES` holds each family's goals and the papers' values.

1. ``finetune_gap`` — fine-tuned minus zero-shot mean accuracy (points; ViT-B/32 × 8: 92.8 − 48.3 = 44.5);
2. ``tsv_c_10_normalized`` — TSV-C at k = int(0.1 · r) per task, normalised accuracy (TSV Tab. 2-3: 99.7 %):
   the task matrices really are low-rank (TSV Fig. 2);
3. ``ta_alpha1_loss`` — Task Arithmetic at α = 1 loses this many normalised points to its best α (chosen on the
   validation split, as the papers do): interference is visible (TA 76.5 % normalised at its best α);
4. ``mean_abs_cosine`` — mean |cos| between flattened task vectors (Iso Fig. 2a: nearly orthogonal).

Optionally, the methods the papers compare (TSV-M, Iso-CTS, Iso-C, best NAI of a merge) with α chosen on
validation. Every accuracy goes through the evaluator, so its results store makes a second report free.
The papers' values are those of ``spectral/data/published_results.csv`` and ``published_glue.csv``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from spectral.io import atomic_write_bytes

Progress = Callable[[int, int, str], None]

#: CLIP ViT-B/32 × 8 tasks, from the papers' tables (TSV Tab. 2-3, Iso Tab. 1)
PAPER_VIT_B32_8 = {
    "zeroshot_mean": 48.3,
    "finetuned_mean": 92.8,
    "finetune_gap": 44.5,
    "tsv_c_10_normalized": 99.7,
    "ta_best_normalized": 76.5,
    "tsv_m_normalized": 92.3,
    "iso_cts_normalized": 92.8,
    "best_nai": 0.85,
}

#: the zoo's goals (issue 14): property → (comparison, threshold)
GOALS: dict[str, tuple[str, float]] = {
    "finetune_gap": (">=", 25.0),
    "tsv_c_10_normalized": (">=", 97.0),
    "ta_alpha1_loss": (">=", 5.0),
    "mean_abs_cosine": ("<=", 0.1),
}

#: GPT-2 × 7 GLUE tasks, AdaRank Table 3 (mean score ×100; Task Arithmetic there is at the paper's α)
PAPER_GPT2_GLUE = {
    "finetuned_mean": 76.80,
    "ta_best_normalized": None,
}

#: the language zoo's goals (issue 23): fine-tuned beats the base-with-head by ≥ 20 points; TA at α = 1 loses ≥ 5
#: points to its best α; TSV-C at 10 % of the rank keeps ≥ 95 % of the fine-tuned score
GOALS_LM: dict[str, tuple[str, float]] = {
    "finetune_gap": (">=", 20.0),
    "tsv_c_10_normalized": (">=", 95.0),
    "ta_alpha1_loss": (">=", 5.0),
}


@dataclass(frozen=True)
class Profile:
    """What a family's zoo is compared with: the papers' values, the goals and the column heading."""

    paper: dict[str, float | None]
    goals: dict[str, tuple[str, float]]
    paper_heading: str
    #: the merges whose normalised score ``methods=True`` reports
    methods: tuple[str, ...]


PROFILES: dict[str, Profile] = {
    "clip": Profile(PAPER_VIT_B32_8, GOALS, "papers (ViT-B/32 × 8)", ("tsv_m", "iso_c", "iso_cts")),
    "lm": Profile(PAPER_GPT2_GLUE, GOALS_LM, "paper (GPT-2 × 7 GLUE)",
                  ("weight_average", "ties", "cart", "tsv_m", "iso_c", "iso_cts")),
}


def profile_of(pool: Any) -> Profile:
    return PROFILES.get(getattr(pool, "family", "clip") or "clip", PROFILES["clip"])


REPORT_VERSION = 2


def _noop(i: int, n: int, text: str) -> None:
    return None


@dataclass(frozen=True)
class ReportLine:
    """One measured property: its value, the papers' value (None when they report none), and its goal."""

    name: str
    value: float
    paper: float | None = None
    goal: str = ""
    holds: bool | None = None
    description: str = ""


def _profile_line(name: str, value: float, description: str, profile: Profile | None = None) -> ReportLine:
    profile = profile or PROFILES["clip"]
    goal = profile.goals.get(name)
    holds = None
    text = ""
    if goal is not None:
        op, threshold = goal
        holds = bool(value >= threshold) if op == ">=" else bool(value <= threshold)
        text = f"{op} {threshold:g}"
    return ReportLine(name, float(value), profile.paper.get(name), text, holds, description)


def zoo_report(
    ev: Any,
    *,
    k_frac: float = 0.1,
    alphas: Sequence[float] | None = None,
    select_split: str | None = None,
    methods: bool = False,
    progress: Progress | None = None,
) -> list[ReportLine]:
    """The four properties of ``ev``'s pool (an :class:`spectral.eval.evaluate.Evaluator`) on its split, and with
    ``methods`` the normalised score of the family's compared merges (CLIP: TSV-M, Iso-C, Iso-CTS; language
    models also weight averaging, TIES and CART) and the best NAI (α chosen on ``select_split``: CLIP's
    validation split; for GLUE-style pools the validation split the papers report, as GLUE's test labels are not
    public). Scores are percentages (accuracy, or CoLA's Matthews correlation); NAI is a fraction."""
    from spectral import analysis
    from spectral.eval import sweeps

    profile = profile_of(ev.pool)
    if select_split is None:
        select_split = "val" if ev.pool.family == "clip" else ev.split

    def _line(name: str, value: float, description: str) -> ReportLine:
        return _profile_line(name, value, description, profile)

    progress = progress or _noop
    alphas = tuple(alphas) if alphas is not None else sweeps.ALPHAS
    tasks = list(ev.pool.task_names)
    steps = 4 + (len(profile.methods) if methods else 0)
    progress(0, steps, "zero-shot and fine-tuned accuracy")
    ft, zs = ev.finetuned(), ev.zeroshot()
    mean_ft = 100 * sum(ft.values()) / len(tasks)
    mean_zs = 100 * sum(zs.values()) / len(tasks)
    lines = [
        _line("zeroshot_mean", mean_zs, "pre-trained image tower with the zero-shot heads, mean accuracy %"
              if ev.pool.family == "clip" else "pre-trained body with each fine-tune's head, mean score %"),
        _line("finetuned_mean", mean_ft, "each task's fine-tuned model on its own task, mean score %"),
        _line("finetune_gap", mean_ft - mean_zs, "fine-tuned minus zero-shot (base with heads) mean score, points"),
    ]
    progress(1, steps, f"TSV-C at {k_frac:g} of the rank")
    tsv_c = {t: ev.compressed(t, k_frac) for t in tasks}
    lines.append(_line("tsv_c_10_normalized", 100 * ev.summary(tsv_c).normalized,
                       f"TSV-C keeping int({k_frac:g}·r) components per task, normalised accuracy %"))

    progress(2, steps, "Task Arithmetic: α on validation")
    best = sweeps.best_alpha(ev, "task_arithmetic", alphas, split=select_split)
    at_best = 100 * ev.summary(ev.merged("task_arithmetic", alpha=best)).normalized
    at_one = 100 * ev.summary(ev.merged("task_arithmetic", alpha=1.0)).normalized
    lines += [
        _line("ta_best_alpha", float(best), f"Task Arithmetic's α chosen on the {select_split} split"),
        _line("ta_best_normalized", at_best, "Task Arithmetic at that α, normalised accuracy %"),
        _line("ta_alpha1_normalized", at_one, "Task Arithmetic at α = 1, normalised accuracy %"),
        _line("ta_alpha1_loss", at_best - at_one, "normalised points Task Arithmetic loses at α = 1 to its best α"),
    ]

    progress(3, steps, "cosine similarity of the task vectors")
    cos = analysis.cosine_similarity(ev.engine)
    off = [abs(float(cos.iloc[i, j])) for i in range(len(tasks)) for j in range(len(tasks)) if i != j]
    lines.append(_line("mean_abs_cosine", sum(off) / len(off) if off else math.nan,
                       "mean |cos| between flattened task vectors (Iso Fig. 2a)"))

    if methods:
        nai_best = -math.inf
        for i, method in enumerate(profile.methods):
            progress(4 + i, steps, f"{method}: α on validation")
            alpha = sweeps.best_alpha(ev, method, alphas, split=select_split)
            s = ev.summary(ev.merged(method, alpha=alpha))
            lines.append(_line(f"{method}_normalized", 100 * s.normalized, f"{method}, α on validation, normalised %"))
            nai_best = max(nai_best, s.nai)
        lines.append(_line("best_nai", nai_best, "best NAI (Iso Eq. 4) of " + ", ".join(profile.methods)))
    progress(steps, steps, "report done")
    return lines


def report_frame(lines: Sequence[ReportLine], family: str = "clip") -> pd.DataFrame:
    """The report as a table: property, this pool, the papers' value (ViT-B/32 × 8, or GPT-2 × 7 GLUE for a
    language pool), goal, holds, what it is."""
    heading = PROFILES.get(family, PROFILES["clip"]).paper_heading
    return pd.DataFrame(
        [{"property": ln.name, "this pool": round(ln.value, 3), heading: ln.paper,
          "goal": ln.goal, "holds": "" if ln.holds is None else ("yes" if ln.holds else "NO"),
          "what": ln.description} for ln in lines]
    )


def format_lines(lines: Sequence[ReportLine]) -> list[str]:
    """``name: value`` lines (the bench format), with the papers' value and the goal when there are any."""
    out = []
    for ln in lines:
        extra = []
        if ln.paper is not None:
            extra.append(f"papers {ln.paper:g}")
        if ln.goal:
            extra.append(f"goal {ln.goal}: {'holds' if ln.holds else 'MISSED'}")
        out.append(f"{ln.name}: {ln.value:.3f}" + (f"  ({'; '.join(extra)})" if extra else ""))
    return out


# -- stored next to the zoo, so that the Overview page shows it without evaluating anything ----------------------
def report_path(root: str | Path, pool_name: str) -> Path:
    return Path(root) / f"report-{pool_name}.json"


def save_report(root: str | Path, pool_name: str, fingerprint: str, lines: Sequence[ReportLine]) -> Path:
    path = report_path(root, pool_name)
    payload = {"version": REPORT_VERSION, "pool": pool_name, "fingerprint": fingerprint,
               "lines": [asdict(ln) for ln in lines]}
    atomic_write_bytes(path, json.dumps(payload, indent=1).encode())
    return path


def load_report(root: str | Path, pool_name: str, fingerprint: str) -> list[ReportLine] | None:
    """The stored report of this pool, or None when there is none or it was measured on other weights."""
    path = report_path(root, pool_name)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if payload.get("version") != REPORT_VERSION or payload.get("fingerprint") != fingerprint:
        return None
    return [ReportLine(**ln) for ln in payload["lines"]]
