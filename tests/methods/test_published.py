"""The shipped published numbers: same content as the papers' tables file, looked up by our method names."""
import math

import pandas as pd

from spectral import published


def test_shipped_table_has_the_seed_papers_headline_numbers():
    table = published.published_results()
    assert list(table.columns) == ["source", "model", "tasks", "method", "abs_acc", "norm_acc"]
    assert {"ViT-B-32", "ViT-B-16", "ViT-L-14"} <= set(table.model) and {8, 14, 20} <= set(table.tasks)
    row = table[(table.source.str.startswith("Iso")) & (table.model == "ViT-B-32") & (table.tasks == 8)
                & (table.method == "Iso-CTS")]
    assert list(row.abs_acc) == [86.2] and list(row.norm_acc) == [92.8]


def test_lookup_by_our_names_and_reference_model():
    rows = published.published_for(["tsv_m", "iso_cts", "svc", "magmax"], 8, "zoo-tiny")
    assert set(rows.method) == {"zeroshot", "finetuned", "tsv_m", "iso_cts"}  # nothing published for SVC/MagMax
    assert set(rows.model) == {"ViT-B-32"} and not rows.same_model.any()
    tsv = rows[(rows.method == "tsv_m") & rows.source.str.startswith("TSV")]
    assert list(tsv.accuracy) == [85.86] and list(tsv.normalised) == [92.31]
    assert "for reference" in published.caption("zoo-tiny", 8)
    own = published.published_for(["tsv_m"], 14, "ViT-L-14", include_references=False)
    assert set(own.model) == {"ViT-L-14"} and own.same_model.all() and set(own.tasks) == {14}
    assert len(published.published_for(["tsv_m"], 5, "ViT-B-32")) == 0


def test_beside_puts_the_users_number_next_to_each_paper():
    summary = pd.DataFrame({"model": ["Zero-shot", "TSV-M"], "accuracy": [50.0, 70.0],
                            "normalised": [0.6, 0.9], "nai": [0.0, 0.5]})
    rows = published.published_for(["tsv_m", "iso_c"], 8, None)
    table = published.beside(summary, rows)
    tsv = table[table.model == "TSV-M"]
    assert len(tsv) == len(rows[rows.method == "tsv_m"]) >= 2 and set(tsv["yours (%)"]) == {70.0}
    assert all(math.isnan(v) for v in table[table.model == "Iso-C"]["yours (%)"])
