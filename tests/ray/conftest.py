"""A real two-node Ray cluster on this machine (head + worker, 1 CPU each), loopback only, torn down after."""
from __future__ import annotations

import os
import shutil

# Ray reads this when it is imported: 0 binds every node to 127.0.0.1 (never the machine's network address)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pytest  # noqa: E402

ray = pytest.importorskip("ray")

OBJECT_STORE_BYTES = 80 * 2**20  # units exchange names and small dicts only


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, micro_root):
    """The cache folder every node shares (here: one local folder), holding the micro zoo as ``zoo-micro``."""
    root = tmp_path_factory.mktemp("shared-cache")
    shutil.copytree(micro_root, root / "zoo" / micro_root.name)
    return root


@pytest.fixture(scope="module")
def cluster(shared_cache):
    from ray.cluster_utils import Cluster

    from spectral.executor import connect

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES,
        "node_ip_address": "127.0.0.1"})
    try:
        worker = c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
        connect(c.address)
        c.worker_node = worker
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
