"""GLUE data from local files, in the two layouts users have (the AdaRank paper's language setting, §6.3).

:func:`load_glue` reads one split of one of the seven GLUE tasks that FusionBench and AdaRank merge (CoLA, SST-2,
MRPC, QQP, MNLI, QNLI, RTE) into a :class:`TextSplit` (texts, integer labels). The layout is detected from the
files in the folder:

1. **GLUE's own distribution** (``glue_data/<Task>/``), tab-separated, read with :mod:`csv` and
   ``quoting=csv.QUOTE_NONE`` (the files contain unbalanced quotes that are part of the text) and ``utf-8-sig``
   (MRPC's files start with a byte-order mark):

   ========  ====================  ===========================================================  ==================
   task      file (test / train)   columns                                                      label
   ========  ====================  ===========================================================  ==================
   CoLA      dev.tsv / train.tsv   no header: source, label, original mark, sentence            ``0`` / ``1``
   SST-2     dev.tsv / train.tsv   ``sentence label``                                           ``0`` / ``1``
   MRPC      dev.tsv / train.tsv   ``Quality #1 ID #2 ID #1 String #2 String`` (BOM)           ``Quality`` 0 / 1
   QQP       dev.tsv / train.tsv   ``id qid1 qid2 question1 question2 is_duplicate``            ``0`` / ``1``
   MNLI      dev_matched.tsv /     16 columns (train 12): ``sentence1`` = col 8, ``sentence2``  words
             train.tsv             = col 9, ``gold_label`` last
   QNLI      dev.tsv / train.tsv   ``index question sentence label``                            words
   RTE       dev.tsv / train.tsv   ``index sentence1 sentence2 label``                          words
   ========  ====================  ===========================================================  ==================

   Headed files are read by column name (the names above; a file lacking one is refused, naming the file, the
   columns expected and those found). Label words map to the hub's integers below; any other word is refused with
   its file and line.
2. **The hub's parquet layout** of ``nyu-mll/glue`` (read with pyarrow): ``<config>/<split>-0000k-of-0000n.parquet``
   (``cola/validation-00000-of-00001.parquet``, ``mnli/validation_matched-00000-of-00001.parquet``), or the
   parquet converter's ``<config>/<split>/0000.parquet``. Columns (checked): cola, sst2 ``sentence, label, idx``;
   mrpc, rte ``sentence1, sentence2, label, idx``; qqp ``question1, question2, label, idx``; mnli
   ``premise, hypothesis, label, idx``; qnli ``question, sentence, label, idx``. Integer labels.

Integer labels are the hub's: mnli 0 entailment, 1 neutral, 2 contradiction; qnli/rte 0 entailment,
1 not_entailment; cola 1 acceptable; sst2 1 positive; mrpc 1 equivalent; qqp 1 duplicate. (transformers' legacy
GLUE processors list MNLI's labels as contradiction, entailment, neutral: that order is not the hub's and is not
used here.)

Splits: ``"test"`` means GLUE's validation split, the test sets of the papers (FusionBench, AdaRank Tables 2-3;
MNLI: validation_matched), because GLUE's own test labels are hidden; ``"validation"``, ``"dev"`` and ``"val"`` name
the same examples (GLUE has no other labelled held-out set). ``"train"`` means train.

``folder`` may be the task's own folder (``glue_data/CoLA``, ``glue/cola``) or the folder above it
(``glue_data``, a clone of ``nyu-mll/glue``).
"""
from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from spectral.data.folders import DatasetError

log = logging.getLogger(__name__)

__all__ = [
    "GLUE_LABEL_NAMES",
    "GLUE_TASKS",
    "GlueColumnsError",
    "GlueLabelError",
    "GlueMissingFilesError",
    "TextSplit",
    "canonical_glue_name",
    "glue_metric",
    "glue_spec",
    "load_glue",
]

GLUE_TASKS: tuple[str, ...] = ("CoLA", "SST-2", "MRPC", "QQP", "MNLI", "QNLI", "RTE")


class GlueColumnsError(DatasetError):
    """A GLUE file does not have the columns of its layout (names the file, the expected and the found columns)."""


class GlueLabelError(DatasetError):
    """A GLUE file holds a label that is not one of its task's (names the file and the line or row)."""


class GlueMissingFilesError(DatasetError, FileNotFoundError):
    """A GLUE folder holds none of the files of either layout (names the folder and the files expected)."""


@dataclass(frozen=True)
class TextSplit:
    """One split of a text classification task: ``text_a[i]`` (and ``text_b[i]`` for sentence pairs), ``labels[i]``."""

    dataset: str
    split: str
    text_a: list[str]
    text_b: list[str] | None
    labels: list[int]
    num_labels: int

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class _GlueSpec:
    name: str  # GLUE's spelling, e.g. "SST-2"
    hub: str  # nyu-mll/glue config name, e.g. "sst2"
    label_names: tuple[str, ...]  # the hub's label order
    hub_text: tuple[str, ...]  # parquet text columns
    tsv_header: tuple[str, ...] | None  # GLUE's header (None: CoLA has none)
    tsv_text: tuple[str, ...] | tuple[int, ...]  # text columns by name (or by index without a header)
    tsv_label: str | int
    label_words: dict[str, int] = field(default_factory=dict)
    dev_file: str = "dev.tsv"
    hub_validation: str = "validation"
    metric: str = "accuracy"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


_DIGITS = {"0": 0, "1": 1}
_MNLI_WORDS = {"entailment": 0, "neutral": 1, "contradiction": 2}
_NLI2_WORDS = {"entailment": 0, "not_entailment": 1}
_COLA_COLUMNS = ("source", "label", "original mark", "sentence")

_SPECS: dict[str, _GlueSpec] = {s.hub: s for s in (
    _GlueSpec("CoLA", "cola", ("unacceptable", "acceptable"), ("sentence",), None, (3,), 1, _DIGITS,
              metric="mcc"),
    _GlueSpec("SST-2", "sst2", ("negative", "positive"), ("sentence",), ("sentence", "label"),
              ("sentence",), "label", _DIGITS),
    _GlueSpec("MRPC", "mrpc", ("not_equivalent", "equivalent"), ("sentence1", "sentence2"),
              ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), ("#1 String", "#2 String"), "Quality",
              _DIGITS),
    _GlueSpec("QQP", "qqp", ("not_duplicate", "duplicate"), ("question1", "question2"),
              ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), ("question1", "question2"),
              "is_duplicate", _DIGITS),
    _GlueSpec("MNLI", "mnli", ("entailment", "neutral", "contradiction"), ("premise", "hypothesis"),
              ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "label2", "label3",
               "label4", "label5", "gold_label"),
              ("sentence1", "sentence2"), "gold_label", _MNLI_WORDS, dev_file="dev_matched.tsv",
              hub_validation="validation_matched"),
    _GlueSpec("QNLI", "qnli", ("entailment", "not_entailment"), ("question", "sentence"),
              ("index", "question", "sentence", "label"), ("question", "sentence"), "label", _NLI2_WORDS),
    _GlueSpec("RTE", "rte", ("entailment", "not_entailment"), ("sentence1", "sentence2"),
              ("index", "sentence1", "sentence2", "label"), ("sentence1", "sentence2"), "label", _NLI2_WORDS),
)}

#: label names of each task in the hub's integer order (index = label)
GLUE_LABEL_NAMES: dict[str, tuple[str, ...]] = {s.name: s.label_names for s in _SPECS.values()}

_TEST_SPLITS = ("test", "validation", "dev", "val")


def canonical_glue_name(name: str) -> str:
    """GLUE's spelling of a task name given in any case, with or without the hyphen, or as a hub config name
    (``cola``, ``sst2``, ``SST-2``, ``glue-mnli``, ``mnli_matched`` → ``CoLA``, ``SST-2``, ``MNLI``)."""
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    key = key.removeprefix("glue")
    if key == "mnlimatched":
        key = "mnli"
    if key not in _SPECS:
        raise DatasetError(f"unknown GLUE task {name!r}; expected one of {', '.join(GLUE_TASKS)}")
    return _SPECS[key].name


def glue_spec(name: str) -> _GlueSpec:
    """The layout facts of one GLUE task (any spelling accepted by :func:`canonical_glue_name`)."""
    canonical = canonical_glue_name(name)
    return next(s for s in _SPECS.values() if s.name == canonical)


def glue_metric(name: str) -> str:
    """``"mcc"`` (Matthews correlation) for CoLA, ``"accuracy"`` for the other six, as GLUE and the papers report."""
    return glue_spec(name).metric


def _is_test(split: str) -> bool:
    if split in _TEST_SPLITS:
        return True
    if split == "train":
        return False
    raise DatasetError(f"unknown GLUE split {split!r}; expected 'test' (GLUE's validation split) or 'train'")


def _candidate_dirs(folder: Path, spec: _GlueSpec) -> list[Path]:
    names = [spec.name, spec.name.replace("-", ""), spec.hub, spec.name.lower()]
    if spec.hub == "mnli":
        names.append("mnli_matched")
    out = [folder]
    for n in dict.fromkeys(names):
        if (folder / n).is_dir():
            out.append(folder / n)
    return out


def _parquet_files(directory: Path, split_names: tuple[str, ...]) -> list[Path]:
    for name in split_names:
        files = sorted(directory.glob(f"{name}-*.parquet")) or sorted((directory / name).glob("*.parquet"))
        if files:
            return files
    return []


def load_glue(dataset: str, folder: str | Path, split: str = "test") -> TextSplit:
    """One split of a GLUE task from local files in either layout (see the module docstring)."""
    spec = glue_spec(dataset)
    test = _is_test(split)
    folder = Path(folder)
    if not folder.is_dir():
        raise GlueMissingFilesError(f"GLUE folder {folder} for {spec.name} does not exist")
    tsv_name = spec.dev_file if test else "train.tsv"
    hub_splits = ((spec.hub_validation, "validation") if spec.hub_validation != "validation" else ("validation",)) \
        if test else ("train",)
    for directory in _candidate_dirs(folder, spec):
        if (directory / tsv_name).is_file():
            return _read_tsv(spec, directory / tsv_name, "test" if test else "train")
        files = _parquet_files(directory, hub_splits)
        if files:
            return _read_parquet(spec, files, "test" if test else "train")
    expected = (f"{spec.name}/{tsv_name} (GLUE's distribution) or {spec.hub}/{hub_splits[0]}-*.parquet "
                f"(nyu-mll/glue on the hub)")
    raise GlueMissingFilesError(f"GLUE folder {folder} holds no {spec.name} {split} split: expected {expected}, "
                                f"directly in the folder or in its {spec.name}/ or {spec.hub}/ subfolder")


def _label(spec: _GlueSpec, word: str, where: str) -> int:
    try:
        return spec.label_words[word.strip()]
    except KeyError:
        raise GlueLabelError(f"{where}: unknown {spec.name} label {word!r}; expected one of "
                             f"{', '.join(repr(w) for w in spec.label_words)}") from None


def _read_tsv(spec: _GlueSpec, path: Path, split: str) -> TextSplit:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    text_a: list[str] = []
    text_b: list[str] | None = [] if len(spec.tsv_text) == 2 else None
    labels: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if spec.tsv_header is None:  # CoLA: no header, four columns, label digits in the second
            columns: list[int] = [*spec.tsv_text, spec.tsv_label]  # type: ignore[list-item]
            width = len(_COLA_COLUMNS)
            first = True
        else:
            header = next(rows, None)
            if header is None:
                raise GlueColumnsError(f"{path}: empty file; {spec.name} expects the columns "
                                       f"{list(spec.tsv_header)}")
            header = [h.strip() for h in header]
            wanted = [*spec.tsv_text, spec.tsv_label]
            missing = [c for c in wanted if c not in header]
            if missing:
                raise GlueColumnsError(f"{path}: {spec.name} file of GLUE's distribution expects the columns "
                                       f"{list(spec.tsv_header)} (missing {missing}); found {header}")
            columns = [header.index(c) for c in wanted]  # type: ignore[arg-type]
            width = len(header)
            first = False
        need = max(columns) + 1
        for line_no, row in enumerate(rows, start=1 if spec.tsv_header is None else 2):
            if not row:
                continue
            if first:
                first = False
                if len(row) != width or row[1].strip() not in spec.label_words:
                    raise GlueColumnsError(
                        f"{path}: {spec.name} file of GLUE's distribution expects {width} columns without a "
                        f"header {list(_COLA_COLUMNS)} with a 0/1 label in the second; found {len(row)} columns "
                        f"{row[:6]}")
            if len(row) < need:
                raise GlueColumnsError(f"{path}, line {line_no}: {len(row)} columns, {spec.name} needs at least "
                                       f"{need} (columns {list(spec.tsv_header or _COLA_COLUMNS)})")
            *texts, word = (row[c] for c in columns)
            labels.append(_label(spec, word, f"{path}, line {line_no}"))
            text_a.append(texts[0])
            if text_b is not None:
                text_b.append(texts[1])
    log.info("read %d %s %s examples from %s (GLUE's distribution)", len(labels), spec.name, split, path)
    return TextSplit(spec.name, split, text_a, text_b, labels, spec.num_labels)


def _read_parquet(spec: _GlueSpec, files: list[Path], split: str) -> TextSplit:
    import pyarrow.parquet as pq

    wanted = [*spec.hub_text, "label"]
    text_a: list[str] = []
    text_b: list[str] | None = [] if len(spec.hub_text) == 2 else None
    labels: list[int] = []
    for path in files:
        try:
            names = pq.read_schema(path).names
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a file that is not parquet
            raise GlueColumnsError(f"{path}: not a readable parquet file ({err})") from err
        missing = [c for c in wanted if c not in names]
        if missing:
            raise GlueColumnsError(f"{path}: {spec.hub} parquet file of nyu-mll/glue expects the columns "
                                   f"{[*spec.hub_text, 'label', 'idx']} (missing {missing}); found {names}")
        table = pq.read_table(path, columns=wanted)
        column_labels = table.column("label").to_pylist()
        for row, value in enumerate(column_labels):
            if value is None or not 0 <= int(value) < spec.num_labels:
                raise GlueLabelError(f"{path}, row {row}: {spec.name} label {value!r} outside 0..{spec.num_labels - 1}"
                                     + (" (the hub's test splits have no labels: -1)" if value == -1 else ""))
        labels.extend(int(v) for v in column_labels)
        text_a.extend(str(s) for s in table.column(spec.hub_text[0]).to_pylist())
        if text_b is not None:
            text_b.extend(str(s) for s in table.column(spec.hub_text[1]).to_pylist())
    log.info("read %d %s %s examples from %d parquet file(s) in %s (nyu-mll/glue)", len(labels), spec.name, split,
             len(files), files[0].parent)
    return TextSplit(spec.name, split, text_a, text_b, labels, spec.num_labels)
