"""The language demo zoo (micro size): standard Hugging Face folders, GLUE's own TSV layout, balanced labels,
determinism, and fine-tuning that helps (measured here with transformers classes, not the build's own numbers)."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from spectral.zoo.lm import (
    LMZooConfig, LMZooError, MNLI_LABELS, NLI2_LABELS, TASK_NAMES, build_lm_zoo, generate_split, lm_zoo_root,
)

GLUE = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}
MNLI_DEV_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                   "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "label2", "label3",
                   "label4", "label5", "gold_label"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return build_lm_zoo(tmp_path_factory.mktemp("lm") / "lm-zoo-7-micro", size="micro", seed=0)


def _rows(path, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _dev(zoo, task):
    """(text_a, text_b, labels) read by GLUE's own columns (independent of spectral.zoo.lm)."""
    folder = zoo / "glue" / GLUE[task]
    if task == "cola":
        rows = _rows(folder / "dev.tsv")
        return [r[3] for r in rows], None, [int(r[1]) for r in rows]
    if task == "mrpc":
        rows = _rows(folder / "dev.tsv", "utf-8-sig")[1:]
        return [r[3] for r in rows], [r[4] for r in rows], [int(r[0]) for r in rows]
    if task == "mnli":
        rows = _rows(folder / "dev_matched.tsv")[1:]
        return [r[8] for r in rows], [r[9] for r in rows], [MNLI_LABELS.index(r[-1]) for r in rows]
    rows = _rows(folder / "dev.tsv")[1:]
    if task == "sst2":
        return [r[0] for r in rows], None, [int(r[1]) for r in rows]
    if task == "qqp":
        return [r[3] for r in rows], [r[4] for r in rows], [int(r[5]) for r in rows]
    return [r[1] for r in rows], [r[2] for r in rows], [NLI2_LABELS.index(r[3]) for r in rows]


def test_folders_load_with_transformers(zoo):
    from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2Model, GPT2TokenizerFast

    base = GPT2Model.from_pretrained(zoo / "gpt2")
    assert base.config.model_type == "gpt2"
    assert not any(k.startswith("transformer.") for k in load_file(str(zoo / "gpt2" / "model.safetensors")))
    base_tok = AutoTokenizer.from_pretrained(zoo / "gpt2")
    assert len(base_tok) == base.config.vocab_size
    for task in TASK_NAMES:
        folder = zoo / f"gpt2_{task}"
        model = GPT2ForSequenceClassification.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        assert isinstance(GPT2TokenizerFast.from_pretrained(folder), GPT2TokenizerFast)
        assert tok.pad_token == tok.eos_token == "<|endoftext|>"
        assert model.config.pad_token_id == tok.eos_token_id == tok.pad_token_id
        assert model.config.num_labels == (3 if task == "mnli" else 2)
        keys = set(load_file(str(folder / "model.safetensors")))
        assert {k for k in keys if not k.startswith("transformer.")} == {"score.weight"}
        assert {k.removeprefix("transformer.") for k in keys if k != "score.weight"} == \
            set(load_file(str(zoo / "gpt2" / "model.safetensors")))
        assert tok("alice saw the dog .")["input_ids"] == base_tok("alice saw the dog .")["input_ids"]


def test_glue_layout(zoo):
    cfg = LMZooConfig.of_size("micro")
    cola = _rows(zoo / "glue/CoLA/dev.tsv")
    assert len(cola) == cfg.n_dev and all(len(r) == 4 for r in cola)  # no header
    assert all(r[1] in "01" and (r[2] == "*") == (r[1] == "0") for r in cola)
    assert _rows(zoo / "glue/SST-2/dev.tsv")[0] == ["sentence", "label"]
    raw = (zoo / "glue/MRPC/dev.tsv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert _rows(zoo / "glue/MRPC/dev.tsv", "utf-8-sig")[0] == ["Quality", "#1 ID", "#2 ID", "#1 String",
                                                                  "#2 String"]
    assert _rows(zoo / "glue/QQP/dev.tsv")[0] == ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    mnli = _rows(zoo / "glue/MNLI/dev_matched.tsv")
    assert mnli[0] == MNLI_DEV_HEADER and all(len(r) == 16 for r in mnli)
    assert {r[-1] for r in mnli[1:]} == set(MNLI_LABELS)
    train = _rows(zoo / "glue/MNLI/train.tsv")
    assert train[0] == MNLI_DEV_HEADER[:11] + ["gold_label"] and all(len(r) == 12 for r in train)
    assert not (zoo / "glue/MNLI/dev.tsv").exists()
    assert _rows(zoo / "glue/QNLI/dev.tsv")[0] == ["index", "question", "sentence", "label"]
    assert _rows(zoo / "glue/RTE/dev.tsv")[0] == ["index", "sentence1", "sentence2", "label"]
    for task in ("qnli", "rte"):
        assert {r[3] for r in _rows(zoo / f"glue/{GLUE[task]}/dev.tsv")[1:]} == set(NLI2_LABELS)
    for task in TASK_NAMES:
        a, b, y = _dev(zoo, task)
        assert len(a) == len(y) == cfg.n_dev and all(a) and (b is None) == (task in ("cola", "sst2"))
        train_file = zoo / "glue" / GLUE[task] / "train.tsv"
        n_train = len(_rows(train_file, "utf-8-sig")) - (task != "cola")
        assert n_train == cfg.n_train[task]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_labels_balanced(zoo, task):
    _, _, y = _dev(zoo, task)
    k = 3 if task == "mnli" else 2
    assert set(y) == set(range(k))
    for c in range(k):
        assert 0.5 / k <= y.count(c) / len(y) <= 1.6 / k, (task, c, y.count(c))


def test_pool_yaml(zoo):
    spec = yaml.safe_load((zoo / "pool.yaml").read_text())
    assert spec["base"] == "gpt2/" and (zoo / spec["base"] / "config.json").is_file()
    assert [t["name"] for t in spec["tasks"]] == list(TASK_NAMES)
    for t in spec["tasks"]:
        assert t["checkpoint"] == f"gpt2_{t['name']}/" and t["dataset"] == GLUE[t["name"]]
        assert (zoo / t["checkpoint"] / "config.json").is_file() and (zoo / t["data"]).is_dir()


def _tensors(root):
    out = {}
    for f in sorted(root.rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.parent.name}/{k}"] = v
    return out


def test_deterministic_and_atomic(zoo, tmp_path):
    again = build_lm_zoo(tmp_path / "again", size="micro", seed=0)
    a, b = _tensors(zoo), _tensors(again)
    assert a.keys() == b.keys() and len(a) > 8 * 10
    assert all(torch.equal(a[k], b[k]) for k in a)
    for f in zoo.rglob("*"):
        if f.is_file() and f.suffix in (".tsv", ".json", ".yaml") and f.name != "manifest.json":
            assert (again / f.relative_to(zoo)).read_bytes() == f.read_bytes(), f
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the temporary folder was renamed
    # reused when nothing changed
    mtime = (again / "gpt2" / "model.safetensors").stat().st_mtime_ns
    assert build_lm_zoo(again, size="micro", seed=0) == again
    assert (again / "gpt2" / "model.safetensors").stat().st_mtime_ns == mtime


def test_seed_changes_data():
    for task in TASK_NAMES:
        a, b = generate_split(task, 50, 0, "dev"), generate_split(task, 50, 1, "dev")
        assert a == generate_split(task, 50, 0, "dev") and a != b


def test_bad_size(tmp_path):
    with pytest.raises(LMZooError, match="micro"):
        build_lm_zoo(tmp_path / "x", size="huge")
    assert not (tmp_path / "x").exists()


def _score(task, model, a, b, y, tok):
    enc = tok(a, b, padding=True, return_tensors="pt") if b is not None else tok(a, padding=True,
                                                                               return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).tolist()
    if task == "cola":
        tp = sum(p == g == 1 for p, g in zip(pred, y))
        tn = sum(p == g == 0 for p, g in zip(pred, y))
        fp = sum(p == 1 and g == 0 for p, g in zip(pred, y))
        fn = sum(p == 0 and g == 1 for p, g in zip(pred, y))
        den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return (tp * tn - fp * fn) / den if den else 0.0
    return sum(p == g for p, g in zip(pred, y)) / len(y)


def test_finetune_beats_base_with_head(zoo):
    """On their own dev data the micro fine-tunes beat the pre-trained body under their own heads (on average,
    and 3-way entailment by a clear margin); the build's recorded scores equal these."""
    from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2Model

    base = GPT2Model.from_pretrained(zoo / "gpt2").state_dict()
    manifest = json.loads((zoo / "manifest.json").read_text())
    gaps = {}
    for task in TASK_NAMES:
        model = GPT2ForSequenceClassification.from_pretrained(zoo / f"gpt2_{task}").eval()
        tok = AutoTokenizer.from_pretrained(zoo / f"gpt2_{task}")
        a, b, y = _dev(zoo, task)
        ft = _score(task, model, a, b, y, tok)
        model.transformer.load_state_dict(base, strict=True)
        bwh = _score(task, model, a, b, y, tok)
        assert ft == pytest.approx(manifest["tasks"][task]["dev"]["finetuned"], abs=1e-9)
        assert bwh == pytest.approx(manifest["tasks"][task]["dev"]["base_with_head"], abs=1e-9)
        gaps[task] = ft - bwh
    assert gaps["mnli"] >= 0.15, gaps
    assert sum(gaps.values()) / len(gaps) > 0.02, gaps


def test_cli_build_reuses(zoo, tmp_path, monkeypatch, capsys):
    from spectral.cli import main

    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path))
    assert lm_zoo_root() == tmp_path / "zoo" / "lm-zoo-7"
    assert lm_zoo_root(size="micro") == tmp_path / "zoo" / "lm-zoo-7-micro"
    mtime = (zoo / "gpt2_cola" / "model.safetensors").stat().st_mtime_ns
    assert main(["zoo", "build", "--family", "lm", "--config", "micro", "--root", str(zoo)]) == 0
    assert (zoo / "gpt2_cola" / "model.safetensors").stat().st_mtime_ns == mtime
    out = capsys.readouterr().out
    assert "lm-zoo-7 ready" in out and all(t in out for t in TASK_NAMES)
