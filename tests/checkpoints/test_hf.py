"""Hugging Face model folders as pools: key alignment, GPT-2 orientation, merges against float64 transcriptions,
the written folder (transformers loads it), sharded/bin/safetensors inputs, named errors."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parents[1]))  # for `import lm_fixtures`

import lm_fixtures as F  # noqa: E402

from spectral.checkpoints import hf  # noqa: E402
from spectral.checkpoints.hf_pool import HFPool, NotAnImagePoolError  # noqa: E402
from spectral.engine import Engine  # noqa: E402
from spectral.errors import ArchitectureMismatchError, SpectralError  # noqa: E402
from spectral.taskset import TaskSet  # noqa: E402

CONV1D = re.compile(r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gpt2_pool(tmp_path_factory):
    return F.write_tiny_gpt2_pool(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def roberta_pool(tmp_path_factory):
    return F.write_tiny_roberta_pool(tmp_path_factory.mktemp("roberta"), tasks=("cola", "mnli"))


def _taskset(pool: HFPool, rule: str = "default") -> TaskSet:
    return TaskSet.from_pool(pool, matrix_filter=pool.matrix_filter_named(rule))


def _raw(folder: Path) -> dict[str, torch.Tensor]:
    """Stored tensors of a folder, read independently of spectral (safetensors files or pytorch_model.bin)."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    if (folder / "model.safetensors.index.json").is_file():
        out: dict[str, torch.Tensor] = {}
        for name in sorted(set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"].values())):
            out.update(load_file(folder / name))
        return out
    return torch.load(folder / "pytorch_model.bin", weights_only=True)


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


# --- key alignment and orientation -----------------------------------------------------------------------------

def test_gpt2_keys_align_and_conv1d_weights_are_out_by_in(gpt2_pool):
    pool = HFPool.discover(gpt2_pool["root"])
    assert pool.family == "lm" and pool.architecture == "gpt2" and pool.task_names == ["cola", "sst2", "rte"]
    base = pool.base_state_dict()
    raw_base = _raw(gpt2_pool["base"])
    assert set(base) == set(raw_base)  # bare GPT2Model keys: nothing to strip, nothing base-only
    raw_ft = _raw(gpt2_pool["tasks"]["cola"])
    assert set(_strip(raw_ft, "transformer.")) - set(base) == {"score.weight"}
    ft = pool.finetuned_state_dict("cola")
    assert list(ft) == list(base)
    for key in base:
        stored = raw_base[key]
        if CONV1D.search(key):
            assert tuple(base[key].shape) == tuple(reversed(stored.shape))  # canonical out x in
            assert torch.equal(base[key], stored.T)
            assert torch.equal(ft[key], raw_ft[f"transformer.{key}"].T)
        else:
            assert torch.equal(base[key], stored)
    assert tuple(base["h.0.attn.c_attn.weight"].shape) == (96, 32)  # 3 * n_embd outputs, n_embd inputs
    head = pool.head_state_dict("cola")
    assert list(head) == ["score.weight"] and torch.equal(head["score.weight"], raw_ft["score.weight"])
    assert pool.metric("cola") == "mcc" and pool.metric("sst2") == "accuracy"


def test_roberta_prefix_pooler_base_only_and_matrix_rules(roberta_pool):
    pool = HFPool.discover(roberta_pool["root"])
    assert sorted(pool.base_only_keys()) == ["pooler.dense.bias", "pooler.dense.weight"]
    base = pool.base_state_dict()
    assert "encoder.layer.0.attention.self.query.weight" in base and "pooler.dense.weight" not in base
    ft = pool.finetuned_state_dict("mnli")
    raw = _raw(roberta_pool["tasks"]["mnli"])
    assert torch.equal(ft["encoder.layer.1.output.dense.weight"], raw["roberta.encoder.layer.1.output.dense.weight"])
    assert pool.head_state_dict("mnli")["classifier.out_proj.weight"].shape[0] == 3
    ts_default, ts_attn = _taskset(pool, "default"), _taskset(pool, "attn_mlp")
    # default (FusionBench): every 2-D body weight, embeddings included; attn_mlp: the 6 projections per layer
    assert set(ts_default.matrix_keys) == {k for k, v in base.items() if v.ndim == 2}
    assert "embeddings.word_embeddings.weight" in ts_default.matrix_keys
    assert len(ts_attn.matrix_keys) == 6 * 2 and all("embeddings" not in k for k in ts_attn.matrix_keys)


# --- GPT-2's transposed weights: same spectra and merges as a Linear layout ---------------------------------------

def test_gpt2_spectra_and_merges_equal_those_of_a_linear_twin(gpt2_pool, tmp_path):
    pool = HFPool.discover(gpt2_pool["root"])
    hf_ts = _taskset(pool)

    def linear(folder: Path) -> dict[str, torch.Tensor]:  # the same weights stored as Linear (out x in) layers
        state = _strip(_raw(folder), "transformer.")
        state.pop("score.weight", None)
        return {k: (v.T.contiguous() if CONV1D.search(k) else v) for k, v in state.items()}

    twin = TaskSet(linear(gpt2_pool["base"]), {t: linear(p) for t, p in gpt2_pool["tasks"].items()},
                   matrix_filter=lambda k, v: v.ndim == 2)
    assert hf_ts.matrix_keys == twin.matrix_keys and len(hf_ts.matrix_keys) == 2 + 4 * 2
    e_hf = Engine(hf_ts, cache_dir=tmp_path / "a", device="cpu")
    e_tw = Engine(twin, cache_dir=tmp_path / "b", device="cpu")
    for key in hf_ts.matrix_keys:
        U1, S1, V1 = e_hf.task_factors(key)
        U2, S2, V2 = e_tw.task_factors(key)
        torch.testing.assert_close(S1, S2, rtol=0, atol=0)
        assert U1.shape == U2.shape and V1.shape == V2.shape
    for method, params in (("tsv_m", {}), ("iso_c", {}), ("task_arithmetic", {"alpha": 0.7})):
        a, b = e_hf.merge(method, **params), e_tw.merge(method, **params)
        for key in b:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{method} {key}")


# --- merges over HF folders equal independent float64 transcriptions -------------------------------------------

def _reference(base: dict, tasks: list[dict], method: str, alpha: float, density: float = 0.2) -> dict:
    """Weight average, task arithmetic and TIES (Yadav et al. 2023; trim over the whole flattened task vector,
    keep |x| ≥ the (d − int(density·d))-th smallest, i.e. int(density·d) + 1 entries, as the authors' code does;
    elect the sign of the summed trimmed mass, zeros take the sign of the summed signs; disjoint mean) in float64,
    on stored keys."""
    keys = [k for k, v in base.items() if v.is_floating_point()]
    deltas = [{k: t[k].double() - base[k].double() for k in keys} for t in tasks]
    if method == "weight_average":
        return {k: base[k].double() + sum(d[k] for d in deltas) / len(deltas) for k in keys}
    if method == "task_arithmetic":
        return {k: base[k].double() + alpha * sum(d[k] for d in deltas) for k in keys}
    assert method == "ties"
    trimmed = []
    for d in deltas:
        flat = torch.cat([d[k].reshape(-1) for k in keys]).abs()
        keep = int(flat.numel() * density)
        thr = torch.sort(flat, descending=True).values[keep]
        trimmed.append({k: d[k] * (d[k].abs() >= thr) for k in keys})
    signs = {k: torch.sign(sum(t[k] for t in trimmed)) for k in keys}
    total = sum(float(s.sum()) for s in signs.values())
    majority = 1.0 if total > 0 else -1.0 if total < 0 else 0.0  # 0: the negative entries are selected
    out = {}
    for k in keys:
        s = signs[k].clone()
        s[s == 0] = majority
        agree = [torch.where(s > 0, t[k] > 0, t[k] < 0) * t[k] for t in trimmed]
        count = sum((a != 0).double() for a in agree).clamp(min=1)
        out[k] = base[k].double() + alpha * sum(agree) / count
    return out


@pytest.mark.parametrize("method,alpha", [("weight_average", 1.0), ("task_arithmetic", 0.6), ("ties", 0.8)])
def test_merges_over_hf_folders_equal_float64_transcription(gpt2_pool, tmp_path, method, alpha):
    from spectral.cli import main

    out = tmp_path / "merged"
    args = ["merge", "--base", str(gpt2_pool["base"]), "--finetuned", *map(str, gpt2_pool["tasks"].values()),
            "--method", method, "--alpha", str(alpha), "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
            "-o", str(out)]
    if method == "ties":
        args += ["--param", "density=0.3"]
    assert main(args) == 0
    merged = _raw(out)
    base = _raw(gpt2_pool["base"])
    tasks = [_strip(_raw(p), "transformer.") for p in gpt2_pool["tasks"].values()]
    ref = _reference(base, tasks, method, alpha, density=0.3)
    assert set(merged) == set(base)
    for key, value in ref.items():
        assert merged[key].shape == base[key].shape  # written back in the base's layout (Conv1D in x out)
        torch.testing.assert_close(merged[key].double(), value, rtol=0, atol=2e-6, msg=key)
    meta = hf.read_metadata(out)
    assert meta["method"] == method and meta["format"] == "pt" and json.loads(meta["tasks"]) == ["cola", "sst2", "rte"]
    assert all(isinstance(v, str) for v in meta.values())


# --- the written folder ----------------------------------------------------------------------------------------

def test_written_gpt2_folder_loads_with_auto_classes_and_shards(gpt2_pool, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    pool = HFPool.discover(gpt2_pool["root"])
    engine = Engine(_taskset(pool), cache_dir=tmp_path / "c", device="cpu")
    body = engine.merge("tsv_m", alpha=1.0)
    one = hf.write_hf_folder(tmp_path / "one", pool.base, body, metadata={"method": "tsv_m", "alpha": 1.0})
    many = hf.write_hf_folder(tmp_path / "many", pool.base, body, metadata={"method": "tsv_m"},
                              max_shard_bytes=20_000)
    shards = sorted(many.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and (many / "model.safetensors.index.json").is_file()
    assert not (many / "model.safetensors").exists()
    assert {p.name for p in one.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                              "tokenizer_config.json"}
    assert _raw(one).keys() == _raw(many).keys()
    for k, v in _raw(one).items():
        assert torch.equal(v, _raw(many)[k])
    assert hf.read_metadata(one)["alpha"] == "1.0"
    for folder in (one, many):
        lm = AutoModelForCausalLM.from_pretrained(folder)
        cls = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
        w = body["h.1.mlp.c_fc.weight"]
        torch.testing.assert_close(lm.transformer.h[1].mlp.c_fc.weight.detach(), w.T)
        torch.testing.assert_close(cls.transformer.wte.weight.detach(), body["wte.weight"])
    assert len(AutoTokenizer.from_pretrained(one)) == len(pool.tokenizer())
    # task_model puts a body into the fine-tune's own class: the fine-tuned body gives the fine-tune's logits
    from transformers import GPT2ForSequenceClassification

    ids = torch.tensor([[3, 17, 40, 8]])
    ours = pool.task_model("sst2", pool.finetuned_state_dict("sst2"))
    theirs = GPT2ForSequenceClassification.from_pretrained(gpt2_pool["tasks"]["sst2"]).eval()
    torch.testing.assert_close(ours(input_ids=ids).logits, theirs(input_ids=ids).logits)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_written_decoder_folder_keeps_base_only_lm_head_and_loads(tmp_path, model_type):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    paths = F.write_tiny_llama_pool(tmp_path / "pool", model_type=model_type)
    pool = HFPool.discover(paths["root"])
    assert pool.base_only_keys() == ["lm_head.weight"]
    body = Engine(_taskset(pool, "attn_mlp"), cache_dir=tmp_path / "c", device="cpu").merge("iso_c", alpha=1.0)
    out = hf.write_hf_folder(tmp_path / "out", pool.base, body, metadata={"method": "iso_c"})
    raw_base, written = _raw(paths["base"]), _raw(out)
    assert torch.equal(written["lm_head.weight"], raw_base["lm_head.weight"])  # left as it is
    assert not torch.equal(written["model.layers.0.self_attn.q_proj.weight"],
                           raw_base["model.layers.0.self_attn.q_proj.weight"])
    lm = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(lm.model.layers[1].mlp.down_proj.weight.detach(), body["layers.1.mlp.down_proj.weight"])
    AutoModelForSequenceClassification.from_pretrained(out, num_labels=2)


def test_atomic_write_leaves_no_half_written_folder(gpt2_pool, tmp_path, monkeypatch):
    from spectral.checkpoints import formats

    pool = HFPool.discover(gpt2_pool["root"])
    body = dict(pool.base_state_dict())
    calls = {"n": 0}

    def failing(key):  # the second shard's disk fills up halfway through its tensors
        calls["n"] += 1
        if calls["n"] == 2 and written["shards"] == 2:
            raise OSError("disk full")
        return produce(key)

    written = {"shards": 0}
    real = formats.write_safetensors_stream

    def stream(path, layout, tensor_of, metadata=None):  # noqa: ANN001, ANN202
        nonlocal produce
        written["shards"] += 1
        calls["n"] = 0
        produce = tensor_of
        return real(path, layout, failing, metadata)

    produce = None
    monkeypatch.setattr(formats, "write_safetensors_stream", stream)
    with pytest.raises(OSError, match="disk full"):
        hf.write_hf_folder(tmp_path / "out", pool.base, body, metadata={}, max_shard_bytes=20_000)
    assert list(tmp_path.iterdir()) == []  # neither OUT_DIR nor a temporary sibling


# --- formats: safetensors, sharded, bin ------------------------------------------------------------------------

def test_bin_sharded_and_safetensors_inputs_give_the_same_merge(tmp_path):
    merges = {}
    for fmt in ("safetensors", "sharded", "bin"):
        paths = F.write_tiny_gpt2_pool(tmp_path / fmt, tasks=("cola", "rte"), fmt=fmt)
        pool = HFPool.discover(paths["root"])
        assert pool.base.format.startswith("bin" if fmt == "bin" else "safetensors")
        if fmt == "sharded":
            assert pool.base.format == "safetensors-sharded" and len(pool.base.files) > 1
        merges[fmt] = Engine(_taskset(pool), cache_dir=tmp_path / fmt / "c", device="cpu").merge("tsv_m")
    for fmt in ("sharded", "bin"):
        assert merges[fmt].keys() == merges["safetensors"].keys()
        for k, v in merges["safetensors"].items():
            assert torch.equal(merges[fmt][k], v), (fmt, k)


# --- pool YAML and discovery -----------------------------------------------------------------------------------

def test_pool_yaml_and_discover_open_an_hf_pool(gpt2_pool, tmp_path, capsys):
    from spectral.checkpoints.pool import discover_pool, open_pool
    from spectral.cli import main

    yaml_file = F.write_pool_yaml(gpt2_pool, data={"cola": "glue/CoLA"})
    pool = open_pool(yaml_file)
    assert isinstance(pool, HFPool) and pool.task_names == ["cola", "sst2", "rte"]
    assert pool.task_spec("cola").data == yaml_file.parent / "glue" / "CoLA"
    yaml_file.unlink()
    spec = discover_pool(gpt2_pool["root"])
    assert spec.layout == "hf" and spec.base == gpt2_pool["root"] / "gpt2"
    assert [t.name for t in spec.tasks] == ["cola", "sst2", "rte"] and spec.tasks[1].dataset == "SST-2"
    assert isinstance(open_pool(gpt2_pool["root"]), HFPool)
    assert main(["pool", "discover", str(gpt2_pool["root"])]) == 0
    text = capsys.readouterr().out
    assert "base: " in text and "gpt2_cola" in text and "CoLA" in text
    with pytest.raises(NotAnImagePoolError, match="language-model pool"):
        pool.head("cola")
    with pytest.raises(NotAnImagePoolError):
        pool.build_image_encoder()


# --- named errors ----------------------------------------------------------------------------------------------

def test_folder_without_config_is_a_named_error_and_exit_2(gpt2_pool, tmp_path, capsys):
    from spectral.cli import main

    bare = tmp_path / "no_config"
    bare.mkdir()
    (bare / "model.safetensors").write_bytes((gpt2_pool["base"] / "model.safetensors").read_bytes())
    with pytest.raises(hf.MissingConfigError, match=r"no_config: no config\.json"):
        hf.read_hf_folder(bare)
    code = main(["merge", "--base", str(gpt2_pool["base"]), "--finetuned", str(bare), "--method", "task_arithmetic",
                 "-o", str(tmp_path / "out")])
    assert code == 2 and "no config.json" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_mismatched_fine_tunes_are_named_errors(gpt2_pool, tmp_path):
    other_type = F.write_tiny_llama_pool(tmp_path / "llama", tasks=("cola",))
    with pytest.raises(ArchitectureMismatchError, match=r"llama model .*the base .*gpt2 model"):
        HFPool.from_folders(gpt2_pool["base"], [other_type["tasks"]["cola"]])
    other_vocab = F.write_tiny_gpt2_pool(tmp_path / "v", tasks=("cola",), vocab_size=280)
    pool = HFPool.from_folders(gpt2_pool["base"], [other_vocab["tasks"]["cola"]])
    with pytest.raises(ArchitectureMismatchError, match=r"'wte\.weight' has shape \(\d+, 32\), the base .* has "
                                                         r"\(\d+, 32\); vocab_size"):
        pool.finetuned_state_dict("cola")
    wider = F.write_tiny_gpt2_pool(tmp_path / "w", tasks=("cola",), n_embd=16)
    pool = HFPool.from_folders(gpt2_pool["base"], [wider["tasks"]["cola"]])
    with pytest.raises(ArchitectureMismatchError, match=r"gpt2_cola: parameter '[\w.]+' has shape \((\d+, )?(16|48),?\), "
                                                         r"the base .*gpt2 has \((\d+, )?(32|96),?\)"):
        TaskSet.from_pool(pool, matrix_filter=pool.matrix_filter)


def test_fine_tune_without_task_head_is_a_named_error(gpt2_pool, tmp_path):
    from spectral.cli import main

    headless = tmp_path / "gpt2_cola"
    headless.mkdir()
    for f in gpt2_pool["base"].iterdir():  # a bare GPT2Model where a GPT2ForSequenceClassification belongs
        (headless / f.name).write_bytes(f.read_bytes())
    pool = HFPool.from_folders(gpt2_pool["base"], [headless])
    with pytest.raises(hf.MissingHeadError, match=r"task 'cola': .*gpt2_cola \(GPT2Model\) has no task head \(score"):
        pool.finetuned_state_dict("cola")
    assert main(["merge", "--base", str(gpt2_pool["base"]), "--finetuned", str(headless), "--method",
                 "task_arithmetic", "-o", str(tmp_path / "out")]) == 2


def test_output_folder_may_not_be_an_input(gpt2_pool):
    pool = HFPool.discover(gpt2_pool["root"])
    with pytest.raises(SpectralError, match="one of the input model folders"):
        hf.write_hf_folder(gpt2_pool["base"], pool.base, dict(pool.base_state_dict()), metadata={})
