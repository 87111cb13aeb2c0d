"""Published numbers of the seed papers, shown next to a user's own results (marked as published).

``spectral/data/published_results.csv`` is a copy of the headline tables of the three seed papers, transcribed
from the papers (columns: source, model, tasks, method, abs_acc, norm_acc; accuracies in %):

- TSV: Gargiulo et al., CVPR 2025, "Task Singular Vectors", Tables 2-3;
- Iso: Marczak et al., ICML 2025, "No Task Left Behind: Isotropic Model Merging", Table 1;
- AdaRank: Lee et al. 2025, Table 1.

``spectral/data/published_glue.csv`` holds AdaRank's language tables (Tables 2-3: RoBERTa-base and GPT-2 × 7 GLUE
tasks; columns source, model, method, task, metric, score; scores as fractions, Matthews correlation for CoLA, the
mean over tasks as task "Average"). Table 3's GPT-2 "Individual" QQP (0.3964) is below every merge of the same
table: most likely a typo in the paper; it is shown as printed, with that note (:data:`GLUE_NOTES`).

SVC's (Li et al. 2026) ViT-B/32 numbers are not included: we did not find its tables in a form we could check, and
we do not transcribe numbers we cannot verify. The demo zoo is not a CLIP ViT: its rows are shown "for reference"
at the same task count for ViT-B/32, the model of the papers' main tables.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable

import pandas as pd

CSV_PATH = Path(__file__).resolve().parent / "data" / "published_results.csv"
GLUE_CSV_PATH = Path(__file__).resolve().parent / "data" / "published_glue.csv"
REFERENCE_MODEL = "ViT-B-32"
#: Hugging Face ``model_type`` of a language pool → the model name of AdaRank's GLUE tables
GLUE_MODELS = {"gpt2": "GPT-2", "roberta": "RoBERTa-base"}
#: the GLUE tables' task names, by the lower-case names pools use (FusionBench: cola, sst2, …)
GLUE_TASKS = {"cola": "CoLA", "sst2": "SST-2", "sst-2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "mnli": "MNLI",
              "qnli": "QNLI", "rte": "RTE"}
GLUE_NOTES = {("GPT-2", "Individual", "QQP"): "0.3964 as printed in AdaRank Table 3: below every merge of the same "
                                             "table, most likely a typo in the paper"}

#: our method / model names → the labels the papers' tables use
LABELS: dict[str, tuple[str, ...]] = {
    "zeroshot": ("Zeroshot", "Zero-shot", "Pretrained"),
    "finetuned": ("Fine-tuned", "Finetuned", "Individual"),
    "weight_average": ("Weight Averaging",),
    "task_arithmetic": ("Task Arithmetic",),
    "ties": ("TIES", "TIES-Merging"),
    "consensus": ("Consensus TA",),
    "tsv_m": ("TSV-M",),
    "iso_c": ("Iso-C",),
    "iso_cts": ("Iso-CTS",),
    "cart": ("CART",),
}


@functools.lru_cache(maxsize=1)
def published_results() -> pd.DataFrame:
    """The whole table (a fresh copy is cheap to make: callers must not mutate the cached frame)."""
    return pd.read_csv(CSV_PATH)


def reference_model(architecture: str | None) -> tuple[str, bool]:
    """(model whose published rows to show, whether it is the pool's own model). A pool of a published
    architecture (ViT-B-32, ViT-B-16, ViT-L-14) gets its own rows; anything else (the demo zoo) ViT-B/32's."""
    models = set(published_results().model)
    if architecture:
        name = architecture.replace("/", "-")
        if name in models:
            return name, True
    return REFERENCE_MODEL, False


def published_for(methods: Iterable[str], num_tasks: int, architecture: str | None = None,
                  *, include_references: bool = True) -> pd.DataFrame:
    """Published rows for ``methods`` (our names, e.g. "tsv_m") at the pool's task count: one row per
    (method, paper). Columns: method (ours), label (the paper's), model, tasks, source, accuracy, normalised,
    same_model (False when shown only for reference). Empty when nothing is published for that setting."""
    if architecture in GLUE_MODELS:
        return _published_glue_for(methods, num_tasks, GLUE_MODELS[architecture], include_references)
    model, same = reference_model(architecture)
    table = published_results()
    wanted = (["zeroshot", "finetuned"] if include_references else []) + [m for m in methods]
    rows = []
    for method in dict.fromkeys(wanted):
        labels = LABELS.get(method, ())
        sel = table[(table.model == model) & (table.tasks == int(num_tasks)) & (table.method.isin(labels))]
        for r in sel.itertuples():
            rows.append({"method": method, "label": r.method, "model": model, "tasks": int(r.tasks),
                         "source": r.source, "accuracy": float(r.abs_acc),
                         "normalised": float(r.norm_acc) if pd.notna(r.norm_acc) else float("nan"),
                         "same_model": same})
    return pd.DataFrame(rows, columns=["method", "label", "model", "tasks", "source", "accuracy", "normalised",
                                       "same_model"])


@functools.lru_cache(maxsize=1)
def published_glue() -> pd.DataFrame:
    """AdaRank's GLUE tables (Tables 2-3), one row per (model, method, task), scores as fractions."""
    return pd.read_csv(GLUE_CSV_PATH)


def _published_glue_for(methods: Iterable[str], num_tasks: int, model: str,
                        include_references: bool) -> pd.DataFrame:
    """:func:`published_for` of a language pool: the mean over the 7 GLUE tasks (AdaRank Tables 2-3) as
    "accuracy" (%; CoLA enters it as Matthews correlation, as in the paper). Nothing for another task count."""
    table = published_glue()
    rows = []
    wanted = (["finetuned"] if include_references else []) + list(methods)
    if int(num_tasks) == 7:
        for method in dict.fromkeys(wanted):
            sel = table[(table.model == model) & (table.task == "Average") & table.method.isin(LABELS.get(method, ()))]
            for r in sel.itertuples():
                rows.append({"method": method, "label": r.method, "model": model, "tasks": 7, "source": r.source,
                             "accuracy": 100.0 * float(r.score), "normalised": float("nan"), "same_model": True})
    return pd.DataFrame(rows, columns=["method", "label", "model", "tasks", "source", "accuracy", "normalised",
                                       "same_model"])


def published_glue_per_task(method: str, architecture: str) -> dict[str, float]:
    """The published per-task scores (fractions; MCC for CoLA) of one of our methods on a language pool's model,
    keyed by the GLUE task name ("CoLA", …); empty when the paper has no such row."""
    model = GLUE_MODELS.get(architecture)
    if model is None:
        return {}
    table = published_glue()
    sel = table[(table.model == model) & table.method.isin(LABELS.get(method, ())) & (table.task != "Average")]
    return {str(r.task): float(r.score) for r in sel.itertuples()}


def glue_task_name(task: str) -> str | None:
    """The GLUE tables' name of a pool's task ("cola" → "CoLA"), or None for a task that is not one of GLUE's."""
    return GLUE_TASKS.get(task.lower())


def caption(architecture: str | None, num_tasks: int) -> str:
    """How the published rows relate to the user's pool, for the table's heading."""
    if architecture in GLUE_MODELS:
        return (f"Published, {GLUE_MODELS[architecture]} × 7 GLUE tasks (AdaRank Tables 2-3; mean score, CoLA as "
                "Matthews correlation)")
    model, same = reference_model(architecture)
    shown = model.replace("ViT-B-", "ViT-B/").replace("ViT-L-", "ViT-L/")
    if same:
        return f"Published, {shown} × {num_tasks} tasks (the papers' numbers for this model)"
    return (f"Published, {shown} × {num_tasks} tasks, for reference: this pool is not one of the papers' models, "
            "so the numbers are not comparable one to one")


def display_label(method: str) -> str:
    """The name a method's row has in the dashboard's accuracy tables."""
    if method == "zeroshot":
        return "Zero-shot"
    if method == "finetuned":
        return "Fine-tuned"
    from spectral.methods import get_method

    return get_method(method).display_name


def beside(summary: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """The user's mean accuracy per model (``analysis.accuracy_summary``: model, accuracy in %, normalised as a
    fraction) next to each published number for the same method: columns model, yours (%), published (%),
    published normalised (%), paper. Models without a published number are left out."""
    yours = dict(zip(summary["model"], summary["accuracy"]))
    rows = []
    for r in published.itertuples():
        label = display_label(r.method)
        rows.append({"model": label, "yours (%)": yours.get(label, float("nan")), "published (%)": r.accuracy,
                     "published normalised (%)": r.normalised, "paper": r.source})
    return pd.DataFrame(rows, columns=["model", "yours (%)", "published (%)", "published normalised (%)", "paper"])
