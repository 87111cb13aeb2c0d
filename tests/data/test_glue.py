"""GLUE from local files (issue 23): GLUE's own TSV distribution and the hub's nyu-mll/glue parquet layout give the
same examples and labels for all seven tasks; wrong columns, unknown label words and missing files are refused
by name."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral.data.folders import DatasetError
from spectral.data.glue import (
    GLUE_LABEL_NAMES,
    GLUE_TASKS,
    GlueColumnsError,
    GlueLabelError,
    GlueMissingFilesError,
    TextSplit,
    canonical_glue_name,
    glue_metric,
    load_glue,
)
from spectral.errors import SpectralError

# Texts with what GLUE's files really hold: unbalanced double quotes (why QUOTE_NONE), apostrophes, non-ASCII.
TEXTS = ['He said "hi to them.', "It's 'quoted' twice", "café prices rose 3%", '"Fully quoted"', "plain words",
         "a b c d e", 'ends with a quote"', "who is it?"]
#: GLUE's directory name → (hub config, pair?, labels of the examples as hub integers)
TASKS = {
    "CoLA": ("cola", False, [1, 0, 1, 1, 0, 1, 0, 1]),
    "SST-2": ("sst2", False, [0, 1, 1, 0, 1, 0, 0, 1]),
    "MRPC": ("mrpc", True, [1, 1, 0, 1, 0, 0, 1, 1]),
    "QQP": ("qqp", True, [0, 0, 1, 0, 1, 1, 0, 1]),
    "MNLI": ("mnli", True, [0, 1, 2, 2, 1, 0, 1, 2]),
    "QNLI": ("qnli", True, [0, 1, 1, 0, 0, 1, 1, 0]),
    "RTE": ("rte", True, [1, 0, 0, 1, 1, 0, 1, 0]),
}
MNLI_WORDS = ("entailment", "neutral", "contradiction")
NLI2_WORDS = ("entailment", "not_entailment")
MNLI_DEV_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                   "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "label2", "label3",
                   "label4", "label5", "gold_label"]
HUB_COLUMNS = {"cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
               "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"), "qnli": ("question", "sentence"),
               "rte": ("sentence1", "sentence2")}


def examples(task: str, split: str) -> tuple[list[str], list[str] | None, list[int]]:
    _, pair, labels = TASKS[task]
    shift = 0 if split == "test" else 3
    a = [f"{TEXTS[(i + shift) % len(TEXTS)]} #{i}" for i in range(len(labels))]
    b = [f"{TEXTS[(i + shift + 5) % len(TEXTS)]} ({i})" for i in range(len(labels))] if pair else None
    ys = labels if split == "test" else labels[::-1]
    return a, b, list(ys)


def _tsv_lines(task: str, split: str) -> list[list[str]]:
    a, b, ys = examples(task, split)
    rows: list[list[str]] = []
    if task == "CoLA":  # no header: source, label, original mark, sentence
        return [[f"src{i % 3}", str(y), "" if y else "*", s] for i, (s, y) in enumerate(zip(a, ys))]
    if task == "SST-2":
        rows.append(["sentence", "label"])
        rows += [[s, str(y)] for s, y in zip(a, ys)]
    elif task == "MRPC":
        rows.append(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"])
        rows += [[str(y), str(1000 + i), str(2000 + i), s, t] for i, (s, t, y) in enumerate(zip(a, b, ys))]
    elif task == "QQP":
        rows.append(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
        rows += [[str(i), str(2 * i), str(2 * i + 1), s, t, str(y)] for i, (s, t, y) in enumerate(zip(a, b, ys))]
    elif task == "MNLI":
        # label1 is deliberately not the gold label: the reader must take gold_label (the last column)
        header = MNLI_DEV_HEADER if split == "test" else MNLI_DEV_HEADER[:10] + ["label1", "gold_label"]
        rows.append(header)
        for i, (s, t, y) in enumerate(zip(a, b, ys)):
            other = MNLI_WORDS[(y + 1) % 3]
            extra = [other, MNLI_WORDS[y], MNLI_WORDS[y], other, MNLI_WORDS[y]] if split == "test" else [other]
            rows.append([str(i), str(100 + i), f"{100 + i}e", "fiction", f"( {s} )", f"( {t} )", f"(ROOT {s})",
                         f"(ROOT {t})", s, t, *extra, MNLI_WORDS[y]])
    elif task in ("QNLI", "RTE"):
        rows.append(["index", "question", "sentence", "label"] if task == "QNLI"
                    else ["index", "sentence1", "sentence2", "label"])
        rows += [[str(i), s, t, NLI2_WORDS[y]] for i, (s, t, y) in enumerate(zip(a, b, ys))]
    return rows


def write_tsv(root: Path, task: str, split: str, lines: list[list[str]] | None = None, bom: bool | None = None) -> Path:
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    name = "train.tsv" if split == "train" else ("dev_matched.tsv" if task == "MNLI" else "dev.tsv")
    text = "".join("\t".join(row) + "\n" for row in (lines if lines is not None else _tsv_lines(task, split)))
    path = folder / name
    path.write_bytes((b"\xef\xbb\xbf" if (task == "MRPC" if bom is None else bom) else b"") + text.encode("utf-8"))
    return path


def write_parquet(root: Path, task: str, split: str, shards: int = 1, layout: str = "main") -> list[Path]:
    hub, pair, _ = TASKS[task]
    a, b, ys = examples(task, split)
    hub_split = "train" if split == "train" else ("validation_matched" if hub == "mnli" else "validation")
    cols = HUB_COLUMNS[hub]
    data = {cols[0]: a, **({cols[1]: b} if pair else {}), "label": ys, "idx": list(range(len(ys)))}
    table = pa.table({k: pa.array(v, type=pa.int64() if k == "label" else pa.int32() if k == "idx" else pa.string())
                      for k, v in data.items()})
    paths = []
    step = -(-len(ys) // shards)
    for k in range(shards):
        if layout == "main":
            path = root / hub / f"{hub_split}-{k:05d}-of-{shards:05d}.parquet"
        else:  # the parquet converter's layout: <config>/<split>/0000.parquet
            path = root / hub / hub_split / f"{k:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(k * step, step), path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    tsv_root, hub_root = tmp_path_factory.mktemp("glue_data"), tmp_path_factory.mktemp("nyu-mll_glue")
    for task in TASKS:
        for split in ("test", "train"):
            write_tsv(tsv_root, task, split)
            write_parquet(hub_root, task, split, shards=2 if split == "train" else 1)
    return tsv_root, hub_root


@pytest.mark.parametrize("split", ["test", "train"])
@pytest.mark.parametrize("task", list(TASKS))
def test_both_layouts_give_the_same_examples_and_labels(both_layouts, task, split) -> None:
    tsv_root, hub_root = both_layouts
    hub = TASKS[task][0]
    from_tsv = load_glue(task, tsv_root / task, split)
    from_hub = load_glue(hub, hub_root / hub, split)
    a, b, ys = examples(task, split)
    expected = TextSplit(task, split, a, b, ys, len(GLUE_LABEL_NAMES[task]))
    assert from_tsv == expected
    assert from_hub == expected
    assert len(from_tsv) == len(ys)


def test_the_files_hold_what_glue_files_hold(both_layouts) -> None:
    """The fixtures are GLUE's formats: MRPC starts with a BOM, CoLA has no header, MNLI's dev file 16 columns
    with sentence1/sentence2 at 8/9 and gold_label last, quotes unbalanced."""
    tsv_root, _ = both_layouts
    assert (tsv_root / "MRPC" / "dev.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t#1 ID")
    assert (tsv_root / "CoLA" / "dev.tsv").read_text().split("\n")[0].split("\t")[1] in ("0", "1")
    header = (tsv_root / "MNLI" / "dev_matched.tsv").read_text().split("\n")[0].split("\t")
    assert len(header) == 16 and header[8:10] == ["sentence1", "sentence2"] and header[-1] == "gold_label"
    assert len(load_glue("CoLA", tsv_root)) == len(TASKS["CoLA"][2])  # no header: the first line is an example
    split = load_glue("SST-2", tsv_root)
    assert split.text_a[0] == 'He said "hi to them. #0'


def test_names_and_folders_in_any_spelling(both_layouts) -> None:
    tsv_root, hub_root = both_layouts
    assert [canonical_glue_name(n) for n in ("cola", "SST2", "sst-2", "glue-mnli", "Mnli_Matched", "rte")] == \
        ["CoLA", "SST-2", "SST-2", "MNLI", "MNLI", "RTE"]
    assert load_glue("sst2", tsv_root) == load_glue("SST-2", tsv_root / "SST-2")  # the folder above the task's
    assert load_glue("MNLI", hub_root) == load_glue("mnli", hub_root / "mnli")
    assert load_glue("qnli", tsv_root, "validation") == load_glue("qnli", tsv_root, "test")
    assert tuple(canonical_glue_name(t) for t in GLUE_TASKS) == GLUE_TASKS
    assert glue_metric("cola") == "mcc" and {glue_metric(t) for t in GLUE_TASKS[1:]} == {"accuracy"}
    assert GLUE_LABEL_NAMES["MNLI"] == ("entailment", "neutral", "contradiction")
    with pytest.raises(DatasetError, match="unknown GLUE task 'wnli'"):
        load_glue("wnli", tsv_root)
    with pytest.raises(DatasetError, match="unknown GLUE split 'dev_mismatched'"):
        load_glue("mnli", tsv_root, "dev_mismatched")


def test_hub_converter_and_mnli_matched_layouts(tmp_path) -> None:
    write_parquet(tmp_path / "converted", "MNLI", "test", layout="converter")
    a, b, ys = examples("MNLI", "test")
    got = load_glue("mnli", tmp_path / "converted")
    assert (got.text_a, got.text_b, got.labels) == (a, b, ys)
    matched = tmp_path / "hub" / "mnli_matched"
    matched.mkdir(parents=True)
    write_parquet(tmp_path / "tmp", "MNLI", "test")
    (tmp_path / "tmp" / "mnli" / "validation_matched-00000-of-00001.parquet").rename(
        matched / "validation-00000-of-00001.parquet")
    assert load_glue("MNLI", tmp_path / "hub").labels == ys


# -- refused input ---------------------------------------------------------------------------------------------------
def test_a_tsv_with_the_wrong_columns_is_refused_by_name(tmp_path) -> None:
    path = write_tsv(tmp_path, "SST-2", "test", [["text", "label"], ["good", "1"]])
    with pytest.raises(GlueColumnsError) as err:
        load_glue("sst2", tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "['sentence', 'label']" in msg and "found ['text', 'label']" in msg
    assert isinstance(err.value, SpectralError) and isinstance(err.value, ValueError)

    path = write_tsv(tmp_path, "RTE", "test",
                     [["index", "premise", "hypothesis", "label"], ["0", "a", "b", "entailment"]])
    with pytest.raises(GlueColumnsError, match="missing \\['sentence1', 'sentence2'\\]") as err:
        load_glue("rte", tmp_path)
    assert str(path) in str(err.value)


def test_a_cola_file_that_is_not_cola_is_refused(tmp_path) -> None:
    path = write_tsv(tmp_path, "CoLA", "test", [["sentence", "label"], ["a b", "1"]])
    with pytest.raises(GlueColumnsError, match="4 columns without a header") as err:
        load_glue("cola", tmp_path)
    assert str(path) in str(err.value) and "found 2 columns" in str(err.value)
    write_tsv(tmp_path, "CoLA", "test", [["s", "1", "", "fine"], ["s", "0"]])
    with pytest.raises(GlueColumnsError, match="line 2: 2 columns"):
        load_glue("cola", tmp_path)


def test_an_unknown_label_word_names_file_and_line(tmp_path) -> None:
    lines = _tsv_lines("RTE", "test")
    lines[2][-1] = "maybe"
    path = write_tsv(tmp_path, "RTE", "test", lines)
    with pytest.raises(GlueLabelError) as err:
        load_glue("rte", tmp_path)
    assert f"{path}, line 3" in str(err.value) and "'maybe'" in str(err.value) and "not_entailment" in str(err.value)
    lines = _tsv_lines("MNLI", "test")
    lines[1][-1] = "-"
    write_tsv(tmp_path, "MNLI", "test", lines)
    with pytest.raises(GlueLabelError, match="line 2"):
        load_glue("mnli", tmp_path)


def test_a_parquet_file_with_the_wrong_columns_or_no_labels_is_refused(tmp_path) -> None:
    path = tmp_path / "sst2" / "validation-00000-of-00001.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"text": ["a"], "label": [1]}), path)
    with pytest.raises(GlueColumnsError) as err:
        load_glue("sst2", tmp_path)
    assert str(path) in str(err.value) and "['sentence', 'label', 'idx']" in str(err.value)
    assert "found ['text', 'label']" in str(err.value)
    pq.write_table(pa.table({"sentence": ["a", "b"], "label": [1, -1], "idx": [0, 1]}), path)
    with pytest.raises(GlueLabelError, match="row 1.*no labels"):
        load_glue("sst2", tmp_path)


def test_missing_files_name_the_folder_and_the_files_expected(tmp_path) -> None:
    (tmp_path / "MNLI").mkdir()
    (tmp_path / "MNLI" / "dev_mismatched.tsv").write_text("x\n")
    with pytest.raises(GlueMissingFilesError) as err:
        load_glue("mnli", tmp_path / "MNLI")
    msg = str(err.value)
    assert str(tmp_path / "MNLI") in msg and "MNLI/dev_matched.tsv" in msg and "validation_matched-*.parquet" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, SpectralError)
    with pytest.raises(GlueMissingFilesError, match="does not exist"):
        load_glue("cola", tmp_path / "nowhere")
    with pytest.raises(GlueMissingFilesError, match="train.tsv"):
        load_glue("qqp", tmp_path, "train")
