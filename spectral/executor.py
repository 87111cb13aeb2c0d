"""The one seam through which independent units of work run: in this process, or spread over a Ray cluster.

A :class:`Unit` is a module-level function plus keyword arguments made of names, paths and parameters only
(never tensors): a sweep point, a batch of same-shape SVDs, one adaptation run. Workers open pools and caches
themselves from those names. An executor runs units and yields :class:`Done` results as they finish; the caller
(the driver) alone writes the results store, so SQLite is never written from two nodes.

- :class:`LocalExecutor` — runs units one after the other in this process (the default; needs no Ray).
- :class:`RayExecutor` — submits every unit as a Ray task with the unit's resources (``num_gpus=1`` for GPU work
  when the cluster has GPUs, CPUs otherwise), retries a unit whose node died (``max_retries``) and yields
  results in completion order.

:func:`get_executor` picks one from ``--ray ADDRESS`` or ``$SPECTRAL_RAY_ADDRESS``: ``auto`` (the cluster this
machine belongs to), ``host:port`` (a head node), or ``local`` (a private cluster on this machine, bound to
127.0.0.1 only).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: environment variable naming the Ray cluster spectral runs on (same values as ``--ray``)
RAY_ADDRESS_ENV = "SPECTRAL_RAY_ADDRESS"
#: object store of a private ``local`` cluster: units exchange names and small result dicts, never tensors
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
#: how often Ray re-runs a unit whose worker or node died (application errors are not retried)
MAX_RETRIES = 3
LOCAL_NODE = "local"


def _noop(i: int, n: int, text: str) -> None:
    return None


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``fn(**kwargs)`` (``fn`` importable on every node, ``kwargs`` names,
    paths and numbers only). ``key`` identifies it to the caller; ``num_cpus``/``num_gpus`` are what it needs."""

    key: Hashable
    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    label: str = ""


@dataclass(frozen=True)
class Done:
    """A finished unit: its value and the node it ran on (a Ray node id, or ``"local"``)."""

    unit: Unit
    value: Any
    node: str
    seconds: float


class Executor:
    """Runs units; :meth:`run` yields :class:`Done` as units finish. Counts what ran where in ``units_run`` and
    ``nodes_used`` (over every :meth:`run` of this executor)."""

    name = "executor"

    def __init__(self) -> None:
        self.units_run = 0
        self.nodes_used: set[str] = set()

    @property
    def is_distributed(self) -> bool:
        return False

    def gpus(self) -> float:
        """GPUs available to units (0 on a CPU-only machine or cluster)."""
        return 0.0

    def run(self, units: Iterable[Unit], progress: Progress | None = None) -> Iterator[Done]:
        raise NotImplementedError

    def summary_line(self, what: str = "points") -> str:
        return f"ran {self.units_run} {what} on {len(self.nodes_used)} Ray nodes"

    def close(self) -> None:
        return None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every unit in this process, in order (the current behaviour of every command)."""

    name = "local"

    def gpus(self) -> float:
        import torch

        return float(torch.cuda.device_count())

    def run(self, units: Iterable[Unit], progress: Progress | None = None) -> Iterator[Done]:
        progress = progress or _noop
        units = list(units)
        for i, unit in enumerate(units):
            progress(i, len(units), unit.label or str(unit.key))
            t0 = time.perf_counter()
            value = unit.fn(**dict(unit.kwargs))
            self.units_run += 1
            self.nodes_used.add(LOCAL_NODE)
            yield Done(unit, value, LOCAL_NODE, time.perf_counter() - t0)
            progress(i + 1, len(units), unit.label or str(unit.key))


def _ray_entry(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> tuple[Any, str, float]:
    """What a Ray worker runs: the unit, and the id of the node it ran on."""
    import ray
    import torch

    # a unit uses the CPUs Ray gave it, not every core of the node (torch would take them all)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    t0 = time.perf_counter()
    value = fn(**dict(kwargs))
    return value, ray.get_runtime_context().get_node_id(), time.perf_counter() - t0


def _import_ray(loopback: bool) -> Any:
    # Ray reads this when it is imported: 0 makes a cluster started here bind 127.0.0.1 only.
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
        from spectral.errors import SpectralError

        raise SpectralError("running on a Ray cluster needs the `ray` package (pip install -r requirements.txt)"
                            ) from exc
    return ray


class RayExecutor(Executor):
    """Units as Ray tasks on the cluster at ``address`` (``auto``, ``host:port``, ``ray://…`` or ``local``).

    Connects in the constructor unless Ray is already initialised in this process (then that connection is
    used and left open on :meth:`close`). A ``local`` cluster is private to this process, binds 127.0.0.1 and
    its object store is capped at :data:`LOCAL_OBJECT_STORE_BYTES`; ``num_cpus`` caps its CPUs.
    """

    name = "ray"

    def __init__(self, address: str = "local", *, num_cpus: int | None = None,
                 max_retries: int = MAX_RETRIES) -> None:
        super().__init__()
        self.address = address
        self.max_retries = max_retries
        loopback = address in ("local", "")
        ray = _import_ray(loopback)
        self._ray = ray
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            connect(address, num_cpus=num_cpus)
        self._remote = ray.remote(_ray_entry)

    @property
    def is_distributed(self) -> bool:
        return True

    def gpus(self) -> float:
        return float(self._ray.cluster_resources().get("GPU", 0.0))

    def run(self, units: Iterable[Unit], progress: Progress | None = None) -> Iterator[Done]:
        ray = self._ray
        progress = progress or _noop
        units = list(units)
        if not units:
            return
        pending = {}
        for unit in units:
            ref = self._remote.options(
                num_cpus=unit.num_cpus, num_gpus=unit.num_gpus, max_retries=self.max_retries,
                retry_exceptions=False, name=(unit.label or "spectral-unit")[:60],
            ).remote(unit.fn, dict(unit.kwargs))
            pending[ref] = unit
        done = 0
        progress(0, len(units), f"{len(units)} units on the Ray cluster")
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit = pending.pop(ref)
                    value, node, seconds = ray.get(ref)
                    done += 1
                    self.units_run += 1
                    self.nodes_used.add(node)
                    yield Done(unit, value, node, seconds)
                    progress(done, len(units), unit.label or str(unit.key))
        finally:
            for ref in pending:  # the caller stopped early (error, Ctrl-C): do not leave work running
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_connection = False


def connect(address: str = "local", *, num_cpus: int | None = None) -> None:
    """``ray.init`` the way spectral's workers need it: no dashboard, the driver's checkout on the workers'
    ``PYTHONPATH`` and ``$SPECTRAL_CACHE_DIR`` passed on; ``local`` starts a private cluster bound to 127.0.0.1
    with a capped object store. Tests call this with a ``ray.cluster_utils.Cluster`` address."""
    loopback = address in ("local", "")
    ray = _import_ray(loopback)
    import spectral

    # workers import spectral from the same checkout (a shared path on a real cluster, or installed)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(spectral.__file__)))
    env_vars = {"PYTHONPATH": os.pathsep.join(p for p in (pkg_parent, os.environ.get("PYTHONPATH")) if p)}
    for name in ("SPECTRAL_CACHE_DIR", "SPECTRAL_POOL_FACTORIES"):  # where caches are; pools registered by name
        if os.environ.get(name):
            env_vars[name] = os.environ[name]
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "runtime_env": {"env_vars": env_vars}}
    if loopback:
        kwargs.update(address="local", _node_ip_address="127.0.0.1", object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    log.info("connecting to Ray at %s", address)
    ray.init(**kwargs)


def ray_address(address: str | None = None) -> str | None:
    """The Ray address to use: ``address`` (``--ray``), else ``$SPECTRAL_RAY_ADDRESS``, else None (local)."""
    value = address if address else os.environ.get(RAY_ADDRESS_ENV, "")
    return value.strip() or None


def get_executor(address: str | None = None) -> Executor:
    """A :class:`RayExecutor` when ``address`` or ``$SPECTRAL_RAY_ADDRESS`` names a cluster, else local."""
    resolved = ray_address(address)
    return RayExecutor(resolved) if resolved else LocalExecutor()


def cluster_info(address: str | None = None) -> dict[str, Any] | None:
    """Address and size (alive nodes, CPUs, GPUs) of the cluster spectral is pointed at, or None when it runs
    locally. Connects when needed and leaves the connection open (the dashboard reuses it)."""
    resolved = ray_address(address)
    if resolved is None:
        return None
    ray = _import_ray(resolved == "local")
    if not ray.is_initialized():
        RayExecutor(resolved)
    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"address": resolved, "nodes": len(nodes), "cpus": float(resources.get("CPU", 0.0)),
            "gpus": float(resources.get("GPU", 0.0))}
