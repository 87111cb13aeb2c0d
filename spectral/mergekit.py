"""mergekit YAML configs: read one into a spectral merge (method, parameters, per-task weights), and write one.

mergekit (arcee-ai/mergekit 0.1.5, ``merge_methods/generalized_task_arithmetic.py``, ``linear.py``,
``sparsify.py``) merges per tensor: with base θ₀ and Δ_t = θ_t − θ₀, every "generalized task arithmetic" method
sparsifies each Δ_t (``magnitude``: the ``max(1, int(density·numel))`` largest entries; ``random``: Bernoulli keep
with probability ``density``, then, with ``rescale``, scaled to the tensor's L1 norm), multiplies it by the model's
``weight``, elects per entry the sign of Σ_t w_t Δ_t (≥ 0 → +; TIES and DARE-TIES only), and returns
θ₀ + λ·Σ_t w_t Δ_t [mask] / (Σ_t w_t [mask] if ``normalize``). ``linear`` is Σ_i w_i θ_i / Σ_i w_i.

How each maps onto spectral (all exact, except DARE's random masks):

=================  =========================================================================================
``linear``         ``task_arithmetic``, α = 1, Δ_t weighted by w_t / Σ_i w_i (the base's own weight counted
                   when the base is listed among the models; without ``base_model`` the first model is the base)
``task_arithmetic`` ``task_arithmetic``, α = λ, Δ_t weighted by w_t (/ Σ w with ``normalize``)
``ties``           ``ties`` with ``trim: per_tensor``, the density, ``normalize``; α = λ
``dare_linear``    ``dare`` (``merge: task_arithmetic``, p = 1 − density), α = λ, weights as task_arithmetic
``dare_ties``      ``dare`` (``merge: ties``, p = 1 − density, no magnitude trim, ``trim: per_tensor``)
spectral methods   ``merge_method: tsv_m`` (``iso_cts``, ``svc``, ``knots``, any registered merge) with its
                   parameters under ``parameters``; per-model ``weight`` scales that model's Δ_t
=================  =========================================================================================

Per-model weights are applied by scaling Δ_t (:class:`WeightedTaskSet`). For TIES with ``normalize`` mergekit
divides by Σ_t w_t·mask, spectral by the count of agreeing tasks: equal weights cancel (so any common weight
works), unequal weights with ``normalize: true`` are refused. DARE's masks are random: spectral draws them from a
seeded generator per tensor and rescales kept entries by 1/(1 − p) (the DARE paper), mergekit from torch's global
generator and rescales to the tensor's L1 norm; the two agree exactly at density 1 and in expectation otherwise.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spectral.errors import ParameterError, SpectralError
from spectral.taskset import TaskSet


class MergekitConfigError(SpectralError, ValueError):
    """A mergekit YAML spectral cannot run: the message names the file and the key."""


#: mergekit's methods spectral runs, with mergekit's defaults of normalize / rescale
MERGEKIT_METHODS: dict[str, dict[str, bool]] = {
    "linear": {"normalize": True},
    "task_arithmetic": {"normalize": False},
    "ties": {"normalize": True},
    "dare_linear": {"normalize": False, "rescale": True},
    "dare_ties": {"normalize": False, "rescale": True},
}
TOP_LEVEL_KEYS = ("merge_method", "models", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source",
                  "tokenizer", "chat_template", "name")
IGNORED_TOP_LEVEL = ("tokenizer_source", "tokenizer", "chat_template", "name")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass
class MergePlan:
    """What a mergekit config asks for, in spectral's terms."""

    method: str
    params: dict[str, Any]
    base: Path
    models: list[Path]
    #: per-task scaling of Δ_t (None: every weight is 1)
    weights: list[float] | None = None
    dtype: torch.dtype | None = None
    merge_method: str = ""
    warnings: list[str] = field(default_factory=list)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise MergekitConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise MergekitConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _resolve_path(value: Any, where: str, roots: Sequence[Path], check: bool) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise MergekitConfigError(f"{where} must be a model folder path, got {value!r}")
    if "+" in value:
        raise MergekitConfigError(f"{where}: {value!r}: mergekit's model+lora syntax is not supported; give a merged "
                                  "folder or use a LoRA pool")
    path = Path(os.path.expanduser(value))
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, *(root / path for root in roots)]
    for c in candidates:
        if c.exists():
            return c
    if not check:
        return candidates[0]
    raise MergekitConfigError(f"{where}: model folder {value!r} not found (looked in the working directory and next "
                              "to the config; Hugging Face hub names are never downloaded)")


def parse_config(config: Any, *, source: str = "config", root: Path | None = None,
                 check_paths: bool = True) -> MergePlan:
    """Validate a loaded mergekit YAML (a dict) and map it to a spectral merge (module docstring).

    Errors are :class:`MergekitConfigError` naming ``source`` and the key (``models[1].parameters.weight``).
    """
    from spectral.methods import REGISTRY, get_method

    def fail(message: str) -> MergekitConfigError:
        return MergekitConfigError(f"{source}: {message}")

    if not isinstance(config, Mapping):
        raise fail("a mergekit config is a mapping with merge_method, models, base_model, parameters")
    unknown = sorted(set(config) - set(TOP_LEVEL_KEYS))
    if unknown:
        hint = " (slices are not supported: spectral merges whole models)" if "slices" in unknown else ""
        raise fail(f"unknown key(s) {unknown}{hint}; known keys are {list(TOP_LEVEL_KEYS)}")
    warnings = [f"{key} is ignored (the base model's tokenizer is copied)" for key in IGNORED_TOP_LEVEL
                if key in config]
    if "merge_method" not in config:
        raise fail("merge_method is missing")
    name = config["merge_method"]
    if not isinstance(name, str):
        raise fail(f"merge_method must be a name, got {name!r}")
    spectral_method = name not in MERGEKIT_METHODS
    if spectral_method:
        try:
            method = get_method(name)
        except SpectralError:
            method = None
        if method is None or method.kind != "merge":
            raise fail(f"merge_method {name!r} is unknown; spectral runs mergekit's {sorted(MERGEKIT_METHODS)} and its "
                       f"own merges {sorted(n for n, m in REGISTRY.items() if m.kind == 'merge')}")
    roots = [root] if root is not None else []

    models = config.get("models")
    if not isinstance(models, list) or not models:
        raise fail("models is missing or empty: list the fine-tuned models as `- model: PATH`")
    top = config.get("parameters") or {}
    if not isinstance(top, Mapping):
        raise fail(f"parameters must be a mapping, got {top!r}")

    base_path: Path | None = None
    if config.get("base_model") is not None:
        base_path = _resolve_path(config["base_model"], "base_model", roots, check_paths)
    elif name != "linear":
        raise fail(f"base_model is missing: {name} merges task vectors θ_t − θ₀ (only linear works without it)")

    per_model_keys = ("weight", "density") if not spectral_method else ("weight",)
    entries: list[tuple[Path, dict[str, float]]] = []
    for i, entry in enumerate(models):
        where = f"models[{i}]"
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, Mapping):
            raise fail(f"{where} must be a mapping with `model:`, got {entry!r}")
        extra = sorted(set(entry) - {"model", "parameters"})
        if extra:
            raise fail(f"{where}: unknown key(s) {extra}; a model entry has model and parameters")
        if "model" not in entry:
            raise fail(f"{where}.model is missing")
        path = _resolve_path(entry["model"], f"{where}.model", roots, check_paths)
        params = entry.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise fail(f"{where}.parameters must be a mapping, got {params!r}")
        bad = sorted(set(params) - set(per_model_keys))
        if bad:
            raise fail(f"{where}.parameters: unknown key(s) {bad}; per-model parameters are {list(per_model_keys)}")
        values: dict[str, float] = {}
        for key in per_model_keys:
            raw = params.get(key, top.get(key))
            if raw is None:
                continue
            label = f"{where}.parameters.{key}" if key in params else f"parameters.{key}"
            if isinstance(raw, (list, Mapping)):
                raise fail(f"{label}: gradients and per-tensor filters are not supported; give one number")
            try:
                values[key] = _number(raw, label)
            except MergekitConfigError as err:
                raise fail(str(err)) from None
        entries.append((path, values))

    # the base: listed among the models (mergekit treats that entry as the base) or not
    base_entry: dict[str, float] | None = None
    if base_path is None:  # linear without base_model: the first model is the base
        base_path, base_entry = entries[0]
        entries = entries[1:]
    else:
        same = [j for j, (p, _) in enumerate(entries) if p.resolve() == base_path.resolve()]
        if same:
            base_entry = entries[same[0]][1]
            entries = [e for j, e in enumerate(entries) if j not in same]
        elif name == "linear":  # mergekit's linear averages base_model too, with the top-level weight
            if "weight" not in top:
                raise fail("base_model: linear averages the base model too: list it under models with a weight "
                           "(0 leaves it out) or give parameters.weight")
            base_entry = {"weight": _number(top["weight"], f"{source}: parameters.weight")}
    if not entries:
        raise fail("models lists no model besides the base")

    dtype = None
    raw_dtype = config.get("out_dtype", config.get("dtype"))
    if raw_dtype is not None:
        if raw_dtype not in DTYPES:
            key = "out_dtype" if "out_dtype" in config else "dtype"
            raise fail(f"{key} {raw_dtype!r} is not one of {sorted(DTYPES)}")
        dtype = DTYPES[raw_dtype]

    plan = MergePlan(method=name, params={}, base=base_path, models=[p for p, _ in entries], dtype=dtype,
                     merge_method=name, warnings=warnings)
    if spectral_method:
        _plan_spectral(plan, method, top, entries, fail)
    else:
        _plan_mergekit(plan, name, top, entries, base_entry, fail)
    return plan


def _weights(entries: list[tuple[Path, dict[str, float]]], fail: Any, required: bool) -> list[float]:
    out = []
    for i, (_, values) in enumerate(entries):
        if "weight" not in values:
            if required:
                raise fail(f"models[{i}].parameters.weight is missing (mergekit requires a weight per model)")
            values["weight"] = 1.0
        out.append(values["weight"])
    return out


def _plan_spectral(plan: MergePlan, method: Any, top: Mapping[str, Any], entries: Any, fail: Any) -> None:
    params = {k: v for k, v in top.items() if k != "weight"}
    try:
        resolved = method.resolve_params(params, len(entries))
    except ParameterError as err:
        raise fail(f"parameters: {err}") from None
    plan.params = dict(resolved)
    weights = _weights(entries, fail, required=False)
    plan.weights = None if all(w == 1.0 for w in weights) else weights


def _plan_mergekit(plan: MergePlan, name: str, top: Mapping[str, Any], entries: Any,
                   base_entry: dict[str, float] | None, fail: Any) -> None:
    allowed = {"normalize", "weight"} if name == "linear" else {"normalize", "weight", "density", "lambda",
                                                                 "int8_mask", "rescale"}
    if name in ("ties", "dare_ties"):
        allowed.add("trim")  # spectral's extension: global (TIES authors) or per_tensor (mergekit, the default)
    bad = sorted(set(top) - allowed)
    if bad:
        raise fail(f"parameters: unknown key(s) {bad} for {name}; known: {sorted(allowed)}")
    defaults = MERGEKIT_METHODS[name]
    try:
        normalize = _flag(top["normalize"], "parameters.normalize") if "normalize" in top else defaults["normalize"]
        lam = _number(top["lambda"], "parameters.lambda") if "lambda" in top else 1.0
        if "int8_mask" in top:
            _flag(top["int8_mask"], "parameters.int8_mask")
        rescale = _flag(top["rescale"], "parameters.rescale") if "rescale" in top else True
    except MergekitConfigError as err:
        raise fail(str(err)) from None
    if "int8_mask" in top:
        plan.warnings.append("parameters.int8_mask is ignored (a mask dtype of mergekit's; spectral's masks are bool)")
    if not rescale:
        raise fail("parameters.rescale: false is not supported: spectral's DARE always rescales kept entries")
    weights = _weights(entries, fail, required=True)
    if name == "linear":
        total = sum(weights) + (base_entry.get("weight", 0.0) if base_entry else 0.0)
        if normalize:
            if abs(total) < 1e-8:
                raise fail("the models' weights sum to 0: linear cannot normalise them")
            weights = [w / total for w in weights]
        elif abs(total - 1.0) > 1e-6:
            raise fail(f"parameters.normalize: false with weights summing to {total} scales the base model; spectral "
                       "merges task vectors: set normalize: true or make the weights sum to 1")
        plan.method, plan.params = "task_arithmetic", {"alpha": 1.0}
        _set_weights(plan, weights)
        return
    densities = [values.get("density", 1.0) for _, values in entries]
    for i, d in enumerate(densities):
        if not 0.0 <= d <= 1.0:
            raise fail(f"models[{i}].parameters.density = {d} must lie in [0, 1]")
        if d != densities[0]:
            raise fail(f"models[{i}].parameters.density = {d} differs from models[0]'s {densities[0]}: spectral "
                       "trims every task at one density")
    density = densities[0]
    if name in ("task_arithmetic", "dare_linear"):
        if normalize:
            total = sum(weights)
            weights = [w / total if abs(total) >= 1e-8 else w for w in weights]
        if name == "task_arithmetic":
            if density < 1.0:
                raise fail("models[0].parameters.density: task_arithmetic does not sparsify; use ties or dare_linear")
            plan.method, plan.params = "task_arithmetic", {"alpha": lam}
        else:
            plan.method, plan.params = "dare", {"alpha": lam, "merge": "task_arithmetic", "p": _drop(density, fail)}
        _set_weights(plan, weights)
        return
    # ties, dare_ties: sign election over the weighted deltas, then Σ w·mask·Δ (/ Σ w·mask with normalize)
    trim = top.get("trim", "per_tensor")
    if trim not in ("per_tensor", "global"):
        raise fail(f"parameters.trim must be per_tensor (mergekit) or global (the TIES authors' code), got {trim!r}")
    if name == "ties":
        plan.method, plan.params = "ties", {"density": density, "trim": trim, "normalize": normalize}
    else:
        plan.method, plan.params = "dare", {"merge": "ties", "p": _drop(density, fail), "density": 1.0,
                                             "trim": trim, "normalize": normalize}
    if len(set(weights)) == 1:
        w = weights[0]
        if w <= 0:
            raise fail(f"models[0].parameters.weight = {w}: TIES needs positive weights")
        plan.params["alpha"] = lam if normalize else lam * w  # a common weight cancels in the normalised mean
        plan.weights = None
    elif normalize:
        raise fail("models[*].parameters.weight: unequal weights with normalize: true divide by Σ_t w_t·mask, which "
                   "spectral's TIES does not; use equal weights or normalize: false")
    else:
        plan.params["alpha"] = lam
        plan.weights = weights


def _drop(density: float, fail: Any) -> float:
    p = 1.0 - density
    if p > 0.99:
        raise fail(f"density {density}: DARE keeps at least 1% of the entries in spectral (p ≤ 0.99)")
    return p


def _set_weights(plan: MergePlan, weights: list[float]) -> None:
    """A common weight becomes α (exact: every such method is linear in Δ); otherwise Δ_t are weighted."""
    if len(set(weights)) == 1:
        plan.params["alpha"] = plan.params.get("alpha", 1.0) * weights[0]
        plan.weights = None
    else:
        plan.weights = weights


def read_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> MergePlan:
    """Read and map a mergekit YAML file (:func:`parse_config`); relative model paths are looked up in the working
    directory, then next to the file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise MergekitConfigError(f"{path}: cannot read the config: {err}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise MergekitConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_config(config, source=str(path), root=p.resolve().parent, check_paths=check_paths)


def to_config(method: str, params: Mapping[str, Any], *, base: str, models: Sequence[str],
              dtype: str | None = None) -> dict[str, Any]:
    """A mergekit-style config of a spectral merge: ``merge_method`` is spectral's method name (mergekit's own
    spelling where the method is the same: task_arithmetic with λ = α), every parameter under ``parameters``.
    :func:`parse_config` reads it back to the same method and parameters."""
    clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
    config: dict[str, Any] = {"merge_method": method, "base_model": base}
    if method == "task_arithmetic":
        config["models"] = [{"model": m, "parameters": {"weight": 1.0}} for m in models]
        config["parameters"] = {"lambda": float(clean.get("alpha", 1.0))}
    elif method == "ties":  # mergekit's ties; trim: global is spectral's extension (mergekit trims per tensor)
        density = float(clean.get("density", 0.2))
        config["models"] = [{"model": m, "parameters": {"weight": 1.0, "density": density}} for m in models]
        config["parameters"] = {"lambda": float(clean.get("alpha", 1.0)),
                                "normalize": bool(clean.get("normalize", True))}
        if clean.get("trim", "global") != "per_tensor":
            config["parameters"]["trim"] = clean.get("trim", "global")
    else:
        config["models"] = [{"model": m} for m in models]
        config["parameters"] = clean
    if dtype:
        config["dtype"] = dtype
    return config


def to_yaml(method: str, params: Mapping[str, Any], *, base: str, models: Sequence[str],
            dtype: str | None = None) -> str:
    """:func:`to_config` as YAML text."""
    import yaml

    return yaml.safe_dump(to_config(method, params, base=base, models=models, dtype=dtype), sort_keys=False)


class WeightedTaskSet(TaskSet):
    """A TaskSet whose task matrices are w_t·Δ_t (mergekit's per-model ``weight``). The SVD cache keys include the
    weight, so weighted and plain entries never mix."""

    def __init__(self, inner: TaskSet, weights: Sequence[float]) -> None:
        if len(weights) != inner.num_tasks:
            raise ValueError(f"{len(weights)} weights for {inner.num_tasks} tasks")
        self.__dict__.update(inner.__dict__)
        self._hashes = {}
        self.weights = [float(w) for w in weights]

    def task_matrix(self, task: str | int, key: str) -> Tensor:
        return super().task_matrix(task, key) * self.weights[self.task_index(task)]

    def task_matrix_into(self, task: str | int, key: str, out: Tensor, *, base: Tensor | None = None) -> Tensor:
        return super().task_matrix_into(task, key, out, base=base).mul_(self.weights[self.task_index(task)])

    def matrix_hash(self, task: str | int, key: str) -> str:
        from spectral.taskset import combine_hashes

        plain = super().matrix_hash(task, key)
        return combine_hashes("weighted", [plain, repr(self.weights[self.task_index(task)])])


def cast_folder(folder: str | os.PathLike[str], dtype: torch.dtype) -> None:
    """Cast every floating-point tensor of a written Hugging Face folder to ``dtype`` (mergekit's ``dtype``), file by
    file (temp + os.replace), and record it in ``config.json``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    root = Path(folder)
    for file in sorted(root.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        tmp = file.with_name(file.name + ".tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, file)
    config = root / "config.json"
    if config.exists():
        data = json.loads(config.read_text())
        for key in ("torch_dtype", "dtype"):
            if key in data or key == "dtype":
                data[key] = DTYPE_NAMES[dtype]
        tmp = config.with_name("config.json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, config)


def pool_model_paths(pool: Any) -> tuple[str, list[str], bool]:
    """(base path, task paths, whether they are real files) of an opened pool, for :func:`pool_yaml`: Hugging Face
    folders and checkpoint pools name their files; other pools (the demo zoo) get placeholders to fill in."""
    folders = getattr(pool, "folders", None)
    base = getattr(pool, "base", None)
    if isinstance(folders, Mapping) and hasattr(base, "path"):
        return str(base.path), [str(folders[t].path) for t in pool.task_names], True
    spec = getattr(pool, "spec", None)
    tasks = getattr(spec, "tasks", None)
    if (spec is not None and getattr(spec, "base", None) is not None and tasks
            and all(getattr(t, "checkpoint", None) is not None for t in tasks)):
        return str(spec.base), [str(t.checkpoint) for t in tasks], True
    return "PATH/TO/BASE", [f"PATH/TO/{t}" for t in pool.task_names], False


def pool_yaml(pool: Any, method: str, params: Mapping[str, Any]) -> tuple[str, bool]:
    """The merge of ``method`` with ``params`` over ``pool`` as a mergekit-style YAML (:func:`to_yaml`), and whether
    the paths in it are the pool's real files."""
    base, models, real = pool_model_paths(pool)
    return to_yaml(method, params, base=base, models=models), real
