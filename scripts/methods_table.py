"""zoo-8 methods table of issue 12 (SVC on TA / TSV-M / Iso-CTS, MagMax, DARE; KnOTS of issue 25): alpha chosen on val (grid
0.1 … 2.0), evaluated on test; results go to cache/results.sqlite.  Run: PYTHONPATH=. python3 scripts/methods_table.py"""
import sys, json, torch
torch.set_num_threads(2)
import pandas as pd
from spectral.zoo import open_zoo_pool
from spectral.eval.evaluate import Evaluator
from spectral.eval import sweeps
pool = open_zoo_pool("zoo-8")
ev = Evaluator(pool, store="cache/results.sqlite", split="test", device="cpu")
variants = [
    ("task_arithmetic", "task_arithmetic", {}),
    ("tsv_m", "tsv_m", {}),
    ("iso_cts", "iso_cts", {}),
    ("ties", "ties", {}),
    ("svc(TA)", "svc", {"base": "task_arithmetic"}),
    ("svc(TSV-M)", "svc", {"base": "tsv_m"}),
    ("svc(Iso-CTS)", "svc", {"base": "iso_cts"}),
    ("magmax", "magmax", {}),
    ("dare(TA)", "dare", {"merge": "task_arithmetic"}),
    ("dare(TIES)", "dare", {"merge": "ties"}),
    ("knots(TIES)", "knots", {"merge": "ties"}),
    ("knots(DARE-TIES)", "knots", {"merge": "dare", "density": 1.0}),
]
frames = []
for i, (label, method, params) in enumerate(variants):
    df = sweeps.method_table(ev, [method], params={method: params}, include_references=(i == 0), select_split="val")
    df.loc[df.method == method, "method"] = label
    frames.append(df)
    s = sweeps.summarize_table(df, ["method", "alpha"])
    print(s[["method", "alpha", "accuracy", "normalized"]].to_string(index=False), flush=True)
full = pd.concat(frames)
full.to_csv("cache/zoo8_methods.csv", index=False)
s = sweeps.summarize_table(full, ["method", "alpha"])
s[["accuracy", "normalized"]] = (s[["accuracy", "normalized"]] * 100).round(2)
print(s[["method", "alpha", "accuracy", "normalized", "nai_of_mean"]].to_string(index=False))
