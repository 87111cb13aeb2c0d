"""Goals of the language demo zoo ``lm-zoo-7`` (issue 23, item 3), measured with transformers classes directly.

    python bench/lm_zoo_goals.py [--root cache/zoo/lm-zoo-7] [--build]

Prints ``name: value`` lines (scores in points: accuracy × 100, CoLA's MCC × 100):

- ``finetuned_mean``, ``base_with_head_mean``, ``gap_points`` (goal ≥ 20): each fine-tune against the pre-trained
  body under the fine-tune's own head;
- ``ta_alpha1_mean``, ``ta_best_alpha``, ``ta_best_mean``, ``ta_alpha1_loss_points`` (goal ≥ 5);
- ``tsvc10_mean``, ``tsvc10_kept`` (goal ≥ 0.95): TSV-C at k_frac = 0.1 (``spectral.compress_layer``) on every 2-D
  body weight delta of each fine-tune, 1-D deltas kept, scored by each task's own head;
- the merge ranking: TA at its best α, weight average, TSV-M, Iso-C, Iso-CTS, each at its best α on the grid
  (α chosen on the dev sets themselves: an oracle, the optimistic figure the goal names), with normalised scores.

Independently of ``spectral.zoo.lm``: the TSV files are read here with ``csv`` by GLUE's own columns, models with
``GPT2Model`` / ``GPT2ForSequenceClassification`` / ``AutoTokenizer``; merges run on the canonical out × in
orientation (Conv1D weights transposed, merged, transposed back) with the matrix rule "every 2-D body weight".
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import spectral  # noqa: E402

TASKS = (("cola", "CoLA", "dev.tsv"), ("sst2", "SST-2", "dev.tsv"), ("mrpc", "MRPC", "dev.tsv"),
         ("qqp", "QQP", "dev.tsv"), ("mnli", "MNLI", "dev_matched.tsv"), ("qnli", "QNLI", "dev.tsv"),
         ("rte", "RTE", "dev.tsv"))
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def read_dev(folder: Path, task: str, name: str) -> tuple[list[str], list[str] | None, list[int]]:
    """GLUE's own dev file: (text_a, text_b, labels) with the hub's integer labels."""
    enc = "utf-8-sig" if task == "mrpc" else "utf-8"
    with open(folder / name, encoding=enc, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task == "cola":
        return [r[3] for r in rows], None, [int(r[1]) for r in rows]
    head, rows = rows[0], rows[1:]
    col = {c: i for i, c in enumerate(head)}
    if task == "sst2":
        return [r[col["sentence"]] for r in rows], None, [int(r[col["label"]]) for r in rows]
    if task == "mrpc":
        return [r[3] for r in rows], [r[4] for r in rows], [int(r[0]) for r in rows]
    if task == "qqp":
        return ([r[col["question1"]] for r in rows], [r[col["question2"]] for r in rows],
                [int(r[col["is_duplicate"]]) for r in rows])
    if task == "mnli":
        words = {"entailment": 0, "neutral": 1, "contradiction": 2}
        return [r[8] for r in rows], [r[9] for r in rows], [words[r[-1]] for r in rows]
    words = {"entailment": 0, "not_entailment": 1}
    a, b = ("question", "sentence") if task == "qnli" else ("sentence1", "sentence2")
    return [r[col[a]] for r in rows], [r[col[b]] for r in rows], [words[r[col["label"]]] for r in rows]


def mcc(pred: list[int], gold: list[int]) -> float:
    tp = sum(p == 1 and g == 1 for p, g in zip(pred, gold))
    tn = sum(p == 0 and g == 0 for p, g in zip(pred, gold))
    fp = sum(p == 1 and g == 0 for p, g in zip(pred, gold))
    fn = sum(p == 0 and g == 1 for p, g in zip(pred, gold))
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den else 0.0


class Zoo:
    def __init__(self, root: Path):
        from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2Model

        self.root = root
        base = GPT2Model.from_pretrained(root / "gpt2")
        self.base = {k: v.detach().clone() for k, v in base.state_dict().items()}
        self.models, self.bodies, self.data = {}, {}, {}
        for task, folder, dev in TASKS:
            model = GPT2ForSequenceClassification.from_pretrained(root / f"gpt2_{task}").eval()
            tok = AutoTokenizer.from_pretrained(root / f"gpt2_{task}")
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            assert model.config.pad_token_id == tok.pad_token_id
            self.models[task] = model
            self.bodies[task] = {k: v.detach().clone() for k, v in model.transformer.state_dict().items()}
            a, b, y = read_dev(root / "glue" / folder, task, dev)
            enc = tok(a, b, padding=True, return_tensors="pt") if b is not None else tok(a, padding=True,
                                                                                       return_tensors="pt")
            self.data[task] = (enc["input_ids"], enc["attention_mask"], y)
        assert all(set(b) == set(self.base) for b in self.bodies.values())

    @torch.no_grad()
    def score(self, task: str, body: dict[str, torch.Tensor]) -> float:
        """Points: 100 × (MCC for CoLA, accuracy otherwise) of the task's model with ``body``."""
        model = self.models[task]
        model.transformer.load_state_dict(body, strict=True)
        ids, mask, y = self.data[task]
        pred = []
        for i in range(0, len(y), 200):
            pred += model(input_ids=ids[i:i + 200], attention_mask=mask[i:i + 200]).logits.argmax(-1).tolist()
        if task == "cola":
            return 100 * mcc(pred, y)
        return 100 * sum(p == g for p, g in zip(pred, y)) / len(y)

    def scores(self, bodies: dict[str, dict[str, torch.Tensor]] | dict[str, torch.Tensor]) -> dict[str, float]:
        per_task = all(t in bodies for t, *_ in TASKS)
        return {t: self.score(t, bodies[t] if per_task else bodies) for t, *_ in TASKS}  # type: ignore[index]


def canonical(key: str, t: torch.Tensor) -> torch.Tensor:
    return t.T if key.endswith(CONV1D) else t


def merge(zoo: Zoo, method: str, alpha: float, **params: float) -> dict[str, torch.Tensor]:
    """A merged body: 2-D deltas through ``spectral.merge_layer`` in out × in orientation, 1-D ones as vectors
    (TA: α·Σ; weight average: mean; TSV-M / Iso: α·mean)."""
    out = {}
    tasks = [t for t, *_ in TASKS]
    for key, base in zoo.base.items():
        if not base.is_floating_point():
            out[key] = base
            continue
        deltas = torch.stack([canonical(key, zoo.bodies[t][key]) - canonical(key, base) for t in tasks])
        if base.dim() == 2:
            d = spectral.merge_layer(method, deltas, alpha=alpha, **params)
            d = d.T if key.endswith(CONV1D) else d
        elif method == "task_arithmetic":
            d = alpha * deltas.sum(0)
        elif method == "weight_average":
            d = deltas.mean(0)
        else:
            d = alpha * deltas.mean(0)
        out[key] = base + d
    return out


def tsv_c(zoo: Zoo, task: str, k_frac: float) -> dict[str, torch.Tensor]:
    out = {}
    for key, base in zoo.base.items():
        ft = zoo.bodies[task][key]
        if base.dim() == 2 and base.is_floating_point():
            d = spectral.compress_layer(canonical(key, ft) - canonical(key, base), k_frac=k_frac)
            out[key] = base + (d.T if key.endswith(CONV1D) else d)
        else:
            out[key] = ft
    return out


def mean(d: dict[str, float]) -> float:
    return statistics.fmean(d.values())


def normalised(s: dict[str, float], ft: dict[str, float]) -> float:
    return statistics.fmean(s[t] / ft[t] for t in s if ft[t] > 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="zoo folder (default cache/zoo/lm-zoo-7)")
    ap.add_argument("--build", action="store_true", help="build the zoo first if it is missing")
    ap.add_argument("--size", default="full", choices=["full", "micro"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    from spectral.zoo.lm import build_lm_zoo, is_lm_zoo_built, lm_zoo_root

    root = Path(args.root) if args.root else lm_zoo_root(size=args.size)
    if not is_lm_zoo_built(root):
        if not args.build:
            print(f"no zoo at {root}: run `python -m spectral zoo build --family lm` or pass --build")
            return 2
        build_lm_zoo(root, size=args.size)
    t0 = time.perf_counter()
    zoo = Zoo(root)
    ft = zoo.scores(zoo.bodies)
    bwh = zoo.scores(zoo.base)
    print(f"root: {root}")
    for t, *_ in TASKS:
        print(f"task_{t}: finetuned {ft[t]:.1f} base_with_head {bwh[t]:.1f}")
    print(f"finetuned_mean: {mean(ft):.2f}")
    print(f"base_with_head_mean: {mean(bwh):.2f}")
    print(f"gap_points: {mean(ft) - mean(bwh):.2f}  (goal >= 20)")

    comp = {t: zoo.score(t, tsv_c(zoo, t, 0.1)) for t, *_ in TASKS}
    print("tsvc10_per_task: " + " ".join(f"{t}={comp[t]:.1f}" for t in comp))
    print(f"tsvc10_mean: {mean(comp):.2f}")
    print(f"tsvc10_kept: {mean(comp) / mean(ft):.4f}  (goal >= 0.95; mean of per-task ratios "
          f"{normalised(comp, ft):.4f})")

    grids = {
        "task_arithmetic": [round(0.1 * i, 2) for i in range(1, 11)],
        "weight_average": [1.0],
        "tsv_m": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
        "iso_c": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0],
        "iso_cts": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0],
    }
    table = []
    for method, grid in grids.items():
        results = []
        for alpha in grid:
            s = zoo.scores(merge(zoo, method, alpha))
            results.append((mean(s), alpha, s))
            print(f"sweep_{method}_alpha{alpha}: {mean(s):.2f}")
        best = max(results, key=lambda r: r[0])
        table.append((method, best))
        if method == "task_arithmetic":
            at1 = next(r for r in results if r[1] == 1.0)
            print(f"ta_alpha1_mean: {at1[0]:.2f}")
            print(f"ta_best_alpha: {best[1]}")
            print(f"ta_best_mean: {best[0]:.2f}")
            print(f"ta_alpha1_loss_points: {best[0] - at1[0]:.2f}  (goal >= 5)")
    print("ranking (alpha chosen on dev, oracle):")
    for rank, (method, (m, alpha, s)) in enumerate(sorted(table, key=lambda r: -r[1][0]), 1):
        per = " ".join(f"{t}={s[t]:.1f}" for t in s)
        print(f"rank{rank}_{method}: mean {m:.2f} normalised {normalised(s, ft):.4f} alpha {alpha} | {per}")
    print(f"seconds: {time.perf_counter() - t0:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
