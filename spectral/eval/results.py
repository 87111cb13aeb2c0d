"""The results store: every accuracy evaluation in one SQLite database in ``cache/``, so none is run twice.

A result is keyed by

- ``pool``: the pool's content fingerprint (weights, heads and data; see :func:`pool_fingerprint`),
- ``method``: a merge method name, or ``zeroshot`` / ``finetuned`` / ``tsv_c`` / any label,
- ``params``: the fully resolved parameters as canonical JSON (sorted keys, floats rounded to 10 significant
  digits so ``0.1`` and ``0.1000000000001`` are the same key),
- ``split``: ``test`` or ``val``,
- ``code_version``: a hash of the source files that compute merges and accuracies (:func:`code_version`),
- ``subsample``: 0 for the whole split, else the size of the fixed, seeded, class-stratified subsample per task
  the numbers rest on (a live estimate; see :mod:`spectral.metrics.estimate`). Every per-task accuracy also
  records ``n``, the number of images it rests on.

Schema version 2 added ``subsample``; databases of version 1 are migrated in place when opened (their results
are full-split results: ``subsample = 0``).

A changed pool or code version is a different key, so stale results are never returned (they stay in the file
until :meth:`ResultsStore.prune`). The database runs in WAL mode and every write is one ``BEGIN IMMEDIATE``
transaction, so two processes (the app and a CLI sweep) can share it; if both miss the same key at the same
time, both compute and the first insert wins (later ones read it back), so callers always see one value.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from spectral.cache import default_cache_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

#: sources whose changes invalidate stored accuracies (paths relative to the ``spectral`` package)
CODE_FILES = (
    "linalg.py", "taskset.py", "engine.py", "pool.py", "methods", "eval/evaluate.py", "eval/heads.py",
    "eval/stream.py", "eval/images.py", "eval/lm_loss.py",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return float(f"{value:.10g}")
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _canonical(value.item())
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def canonical_params(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a parameter dict (sorted keys, no spaces, floats to 10 significant digits)."""
    return json.dumps(_canonical(dict(params)), sort_keys=True, separators=(",", ":"))


_CODE_VERSION: str | None = None


def code_version() -> str:
    """Short SHA-256 of the library version and the sources in :data:`CODE_FILES` (computed once per process)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import spectral

        pkg = Path(spectral.__file__).resolve().parent
        h = hashlib.sha256(f"spectral {spectral.__version__}".encode())
        for rel in CODE_FILES:
            path = pkg / rel
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for f in files:
                if f.is_file():
                    h.update(str(f.relative_to(pkg)).encode())
                    h.update(f.read_bytes())
        _CODE_VERSION = h.hexdigest()[:16]
    return _CODE_VERSION


def pool_fingerprint(pool: Any) -> str:
    """Content key of a model pool: ``pool.fingerprint()`` when it has one (the zoo hashes its files at build
    time), else a SHA-256 over the base and fine-tuned tensors, the heads and the test/val split sizes."""
    fp = getattr(pool, "fingerprint", None)
    if callable(fp):
        return str(fp())
    cached = getattr(pool, "_spectral_fingerprint", None)
    if cached:
        return cached
    from spectral.taskset import content_hash

    h = hashlib.sha256(f"{pool.architecture}|{list(pool.task_names)}".encode())
    base = pool.base_state_dict()
    for key in sorted(base):
        h.update(key.encode())
        h.update(content_hash(base[key]).encode())
    for task in pool.task_names:
        ft = pool.finetuned_state_dict(task)
        for key in sorted(ft):
            h.update(f"{task}/{key}".encode())
            h.update(content_hash(ft[key]).encode())
        h.update(pool.head_fingerprint(task).encode())
        for split in ("val", "test"):
            try:
                h.update(f"{task}/{split}/{len(pool.dataset(task, split))}".encode())
            except Exception:  # noqa: BLE001 - a pool may lack a split
                h.update(f"{task}/{split}/-".encode())
    value = h.hexdigest()
    try:
        pool._spectral_fingerprint = value
    except AttributeError:
        pass
    return value


@dataclass(frozen=True)
class ResultKey:
    pool: str
    method: str
    params: str  # canonical JSON
    split: str
    code_version: str
    #: 0: the whole split; N: a stratified subsample of N images per task (an estimate)
    subsample: int = 0

    @classmethod
    def make(cls, pool: str, method: str, params: Mapping[str, Any], split: str = "test",
             version: str | None = None, subsample: int | None = 0) -> "ResultKey":
        return cls(pool, method, canonical_params(params), split, version if version is not None else code_version(),
                   int(subsample or 0))


@dataclass(frozen=True)
class Result:
    key: ResultKey
    accuracies: dict[str, float]
    counts: dict[str, int]
    seconds: float
    created: float
    pool_name: str = ""
    node: str = ""  # the Ray node id it ran on ("" when it ran in the process that stored it)
    #: per-task 95 % interval bounds computed with the scores where they are not Wilson's (bootstrap of an MCC)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: per-task mean token loss of the evaluated model on a language-modelling task (its score is the normalised one)
    losses: dict[str, float] = field(default_factory=dict)

    @property
    def is_subsample(self) -> bool:
        return self.key.subsample > 0

    def intervals(self) -> dict[str, tuple[float, float]]:
        """95 % interval of every task's score: the stored one where the evaluation computed it (the bootstrap
        percentile interval of a Matthews correlation), else the Wilson interval of an accuracy from its ``n``
        examples (fractions; a full split's numbers are exact, but their interval is still the binomial one of that
        many images)."""
        from spectral.metrics.estimate import wilson_interval

        def interval(t: str, a: float) -> tuple[float, float]:
            if t in self.bounds:
                return self.bounds[t]
            if not 0.0 <= a <= 1.0:  # not a proportion (a correlation stored without its interval): none known
                return (math.nan, math.nan)
            return wilson_interval(round(a * self.counts.get(t, 0)), self.counts.get(t, 0))

        return {t: interval(t, a) for t, a in self.accuracies.items()}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pool TEXT NOT NULL,
    pool_name TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    split TEXT NOT NULL,
    code_version TEXT NOT NULL,
    created REAL NOT NULL,
    seconds REAL NOT NULL,
    subsample INTEGER NOT NULL DEFAULT 0,
    UNIQUE (pool, method, params, split, subsample, code_version)
);
CREATE TABLE IF NOT EXISTS accuracies (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    accuracy REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, task)
);
CREATE INDEX IF NOT EXISTS runs_pool_method ON runs (pool, method);
"""
# accuracies.low / accuracies.high (added by migration): a stored interval where it is not Wilson's (NULL otherwise)


def _add_column(con: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    """Migration of a database made before ``column`` existed (another process may be adding it too)."""
    if column in {row[1] for row in con.execute(f"PRAGMA table_info({table})")}:
        return
    try:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


class ResultsStore:
    """SQLite results database (default ``<cache>/results.sqlite``)."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_cache_dir() / "results.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._migrate(con)
            _add_column(con, "runs", "node", "TEXT NOT NULL DEFAULT ''")
            _add_column(con, "accuracies", "low", "REAL")
            _add_column(con, "accuracies", "high", "REAL")
            _add_column(con, "accuracies", "loss", "REAL")

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Version 1 → 2: ``runs`` gains ``subsample`` and it joins the unique key. SQLite cannot change a table's
        UNIQUE constraint, so the table is rebuilt (SQLite's documented 12-step ALTER, foreign keys off so the
        accuracies rows stay attached to their run ids), in one transaction."""
        cols = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
        if "subsample" in cols:
            con.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
                        (str(SCHEMA_VERSION), SCHEMA_VERSION))
            return
        log.info("results store %s: migrating schema 1 → %d (adding 'subsample')", self.path, SCHEMA_VERSION)
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("BEGIN IMMEDIATE")
        try:
            cols = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
            if "subsample" not in cols:  # another process may have migrated while we waited for the lock
                con.execute("CREATE TABLE runs_v2 " + _SCHEMA.split("CREATE TABLE IF NOT EXISTS runs ", 1)[1]
                            .split(";", 1)[0])
                con.execute("INSERT INTO runs_v2 (id, pool, pool_name, method, params, split, code_version, created, "
                            "seconds, subsample) SELECT id, pool, pool_name, method, params, split, code_version, "
                            "created, seconds, 0 FROM runs")
                con.execute("DROP TABLE runs")
                con.execute("ALTER TABLE runs_v2 RENAME TO runs")
                con.execute("CREATE INDEX IF NOT EXISTS runs_pool_method ON runs (pool, method)")
                problems = con.execute("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise sqlite3.IntegrityError(f"{self.path}: migration left dangling rows {problems[:3]}")
            con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            yield con
        finally:
            con.close()

    # -- reads --------------------------------------------------------------------------------------------------
    def get(self, key: ResultKey) -> Result | None:
        with self._connect() as con:
            return self._get(con, key)

    def _get(self, con: sqlite3.Connection, key: ResultKey) -> Result | None:
        row = con.execute(
            "SELECT id, seconds, created, pool_name, node FROM runs WHERE pool=? AND method=? AND params=? AND split=? "
            "AND code_version=? AND subsample=?",
            (key.pool, key.method, key.params, key.split, key.code_version, key.subsample),
        ).fetchone()
        if row is None:
            return None
        run_id, seconds, created, pool_name, node = row
        accs, counts, bounds, losses = {}, {}, {}, {}
        for task, acc, n, low, high, loss in con.execute(
                "SELECT task, accuracy, n, low, high, loss FROM accuracies WHERE run_id=? ORDER BY rowid", (run_id,)):
            accs[task], counts[task] = float(acc), int(n)
            if low is not None and high is not None:
                bounds[task] = (float(low), float(high))
            if loss is not None:
                losses[task] = float(loss)
        return Result(key, accs, counts, float(seconds), float(created), pool_name, node or "", bounds, losses)

    def __contains__(self, key: ResultKey) -> bool:
        return self.get(key) is not None

    # -- writes -------------------------------------------------------------------------------------------------
    def put(self, key: ResultKey, accuracies: Mapping[str, float], *, counts: Mapping[str, int] | None = None,
            seconds: float = 0.0, pool_name: str = "", node: str = "",
            bounds: Mapping[str, tuple[float, float]] | None = None,
            losses: Mapping[str, float] | None = None) -> Result:
        """Insert a result in one transaction; if the key is already there (another process was faster), the
        stored result is kept and returned. ``node``: the Ray node that computed it; ``bounds``: intervals that are
        not Wilson's (:attr:`Result.bounds`); ``losses``: mean token losses of language-modelling tasks."""
        counts = counts or {}
        bounds = bounds or {}
        losses = losses or {}
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                existing = self._get(con, key)
                if existing is not None:
                    con.execute("COMMIT")
                    return existing
                cur = con.execute(
                    "INSERT INTO runs (pool, pool_name, method, params, split, code_version, created, seconds, "
                    "subsample, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key.pool, pool_name, key.method, key.params, key.split, key.code_version, time.time(), seconds,
                     key.subsample, node),
                )
                run_id = cur.lastrowid
                con.executemany(
                    "INSERT INTO accuracies (run_id, task, accuracy, n, low, high, loss) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, t, float(a), int(counts.get(t, 0)),
                      *((float(bounds[t][0]), float(bounds[t][1])) if t in bounds else (None, None)),
                      float(losses[t]) if t in losses else None)
                     for t, a in accuracies.items()],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        result = self.get(key)
        assert result is not None
        return result

    def get_or_compute(
        self,
        key: ResultKey,
        compute: Callable[[], Mapping[str, float] | tuple[Mapping[str, float], Mapping[str, int]]],
        *,
        pool_name: str = "",
    ) -> Result:
        """The stored result for ``key``, or ``compute()`` (accuracies, or (accuracies, counts)) stored and returned."""
        found = self.get(key)
        if found is not None:
            return found
        t0 = time.perf_counter()
        out = compute()
        accs, counts = out if isinstance(out, tuple) else (out, None)
        return self.put(key, accs, counts=counts, seconds=time.perf_counter() - t0, pool_name=pool_name,
                        bounds=getattr(out, "bounds", None), losses=getattr(out, "losses", None))

    def delete(self, *, pool: str | None = None, method: str | None = None, code_version: str | None = None) -> int:
        """Delete matching results; returns how many runs were deleted."""
        where, args = self._where(pool=pool, method=method, code_version=code_version)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            n = con.execute(f"DELETE FROM runs{where}", args).rowcount
            con.execute("COMMIT")
        return int(n)

    def prune(self, keep_code_version: str | None = None) -> int:
        """Delete results computed by other code versions than ``keep_code_version`` (default: the current one)."""
        keep = keep_code_version or code_version()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            n = con.execute("DELETE FROM runs WHERE code_version != ?", (keep,)).rowcount
            con.execute("COMMIT")
        return int(n)

    # -- export -------------------------------------------------------------------------------------------------
    @staticmethod
    def _where(**filters: str | None) -> tuple[str, list[str]]:
        clauses, args = [], []
        for col, val in filters.items():
            if val is not None:
                clauses.append(f"{col}=?")
                args.append(val)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def to_dataframe(self, *, pool: str | None = None, method: str | None = None, split: str | None = None,
                     code_version: str | None = None):
        """Long table: one row per (run, task) with pool, pool_name, method, params (JSON), every parameter as
        its own column, split, code_version, task, accuracy (the task's score: accuracy, MCC, or the normalised
        token-loss score), n (images or examples it rests on), subsample (0: whole split), seconds, created, node
        (Ray node id), loss (a language-modelling task's mean token loss, else empty)."""
        import pandas as pd

        where, args = self._where(**{"r.pool": pool, "r.method": method, "r.split": split,
                                     "r.code_version": code_version})
        with self._connect() as con:
            rows = con.execute(
                "SELECT r.id, r.pool, r.pool_name, r.method, r.params, r.split, r.code_version, r.seconds, "
                f"r.created, a.task, a.accuracy, a.n, r.subsample, r.node, a.loss FROM runs r JOIN accuracies a "
                f"ON a.run_id = r.id"
                f"{where} "
                "ORDER BY r.id, a.rowid",
                args,
            ).fetchall()
        cols = ["run", "pool", "pool_name", "method", "params", "split", "code_version", "seconds", "created",
                "task", "accuracy", "n", "subsample", "node", "loss"]
        df = pd.DataFrame(rows, columns=cols)
        if len(df):
            params = pd.DataFrame([json.loads(p) for p in df["params"]], index=df.index)
            params = params[[c for c in params.columns if c not in df.columns]]
            df = pd.concat([df, params.add_prefix("param_")], axis=1)
        return df

    def to_csv(self, path: str | Path, **filters: str | None) -> Path:
        """Write :meth:`to_dataframe` as CSV atomically; returns the path."""
        from spectral.io import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, self.to_dataframe(**filters).to_csv(index=False).encode())
        return path

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
