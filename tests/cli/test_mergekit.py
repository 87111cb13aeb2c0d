"""mergekit YAML configs (issue 25): the reader on every listed method, a CLI merge over tiny Hugging Face folders,
and bad configs rejected by key with exit status 2. (Equality with mergekit itself: bench/mergekit_compare.py.)"""
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parents[1]))  # for `import lm_fixtures`

import lm_fixtures as F

from spectral.cli import main
from spectral.mergekit import MergekitConfigError, parse_config, read_config, to_yaml


def cfg(method, *, weights=(1.0, 1.0), density=None, top=None, base="base", **extra):
    models = []
    for i, w in enumerate(weights):
        params = {} if w is None else {"weight": w}
        if density is not None:
            params["density"] = density
        models.append({"model": f"t{i}", "parameters": params} if params else {"model": f"t{i}"})
    out = {"merge_method": method, "base_model": base, "models": models, **extra}
    if top is not None:
        out["parameters"] = top
    return out


def plan_of(config):
    return parse_config(config, check_paths=False)


@pytest.mark.parametrize("config,method,params,weights", [
    # linear: Σ w_i θ_i / Σ w_i = θ₀ + Σ (w_t / Σ w) Δ_t (the base listed with weight 0, as mergekit needs it)
    ({"merge_method": "linear", "models": [{"model": "base", "parameters": {"weight": 0.0}},
                                           {"model": "t0", "parameters": {"weight": 1.0}},
                                           {"model": "t1", "parameters": {"weight": 1.0}}], "base_model": "base"},
     "task_arithmetic", {"alpha": 0.5}, None),
    (cfg("linear", weights=(3.0, 1.0), top={"weight": 0.0}), "task_arithmetic", {"alpha": 1.0}, [0.75, 0.25]),
    (cfg("task_arithmetic", weights=(0.5, 0.5), top={"lambda": 0.8}), "task_arithmetic", {"alpha": 0.4}, None),
    (cfg("task_arithmetic", weights=(0.7, 0.2)), "task_arithmetic", {"alpha": 1.0}, [0.7, 0.2]),
    (cfg("ties", weights=(0.6, 0.6), density=0.3),
     "ties", {"alpha": 1.0, "density": 0.3, "trim": "per_tensor", "normalize": True}, None),
    (cfg("ties", weights=(0.5, 0.3), density=0.3, top={"normalize": False, "int8_mask": True}),
     "ties", {"alpha": 1.0, "density": 0.3, "trim": "per_tensor", "normalize": False}, [0.5, 0.3]),
    (cfg("dare_linear", weights=(0.5, 0.5), density=0.7, top={"lambda": 2.0}),
     "dare", {"alpha": 1.0, "merge": "task_arithmetic", "p": pytest.approx(0.3)}, None),
    (cfg("dare_ties", weights=(1.0, 1.0), density=0.6),
     "dare", {"alpha": 1.0, "merge": "ties", "p": pytest.approx(0.4), "density": 1.0, "trim": "per_tensor",
              "normalize": False}, None),
])
def test_reader_maps_mergekit_methods(config, method, params, weights):
    plan = plan_of(config)
    assert plan.method == method
    assert plan.params == params
    assert plan.weights == (pytest.approx(weights) if weights else None)
    assert plan.base == Path.cwd() / "base"


@pytest.mark.parametrize("method,top,expected", [
    ("tsv_m", {"alpha": 0.9, "k_frac": 0.25}, {"alpha": 0.9, "k_frac": 0.25}),
    ("iso_cts", {"common_frac": 0.6}, {"common_frac": 0.6}),
    ("svc", {"base": "tsv_m", "svc_alpha": 0.5}, {"base": "tsv_m", "svc_alpha": 0.5}),
    ("knots", {"merge": "dare", "p": 0.2, "alpha": 0.7}, {"merge": "dare", "p": 0.2, "alpha": 0.7}),
])
def test_reader_accepts_spectral_methods(method, top, expected):
    plan = plan_of(cfg(method, weights=(None, None), top=top))
    assert plan.method == method and plan.weights is None
    for key, value in expected.items():
        assert plan.params[key] == value
    # every other parameter is the method's default
    from spectral.methods import get_method

    assert plan.params == get_method(method).resolve_params(top, 2)


@pytest.mark.parametrize("config,key", [
    (cfg("slerp"), "merge_method"),
    ({"merge_method": "ties", "base_model": "base"}, "models"),
    (cfg("ties", models_extra=1), "models_extra"),
    (cfg("ties", weights=("heavy", 1.0)), "models[0].parameters.weight"),
    (cfg("ties", weights=(1.0, True)), "models[1].parameters.weight"),
    ({"merge_method": "task_arithmetic", "base_model": "b", "models": [{"model": "t0", "parameters": {"wieght": 1}}]},
     "wieght"),
    ({"merge_method": "task_arithmetic", "base_model": "b", "models": [{"model": "t0"}]},
     "models[0].parameters.weight"),
    ({"merge_method": "ties", "models": [{"model": "t0", "parameters": {"weight": 1}}]}, "base_model"),
    (cfg("ties", weights=(0.2, 0.9), density=0.5), "weight"),
    (cfg("ties", top={"normalize": "yes"}), "parameters.normalize"),
    (cfg("ties", top={"epsilon": 0.1}), "epsilon"),
    (cfg("tsv_m", weights=(None, None), top={"k_fraction": 0.1}), "k_fraction"),
    (cfg("ties", dtype="float8"), "dtype"),
    (cfg("dare_linear", top={"rescale": False}, density=0.5), "parameters.rescale"),
    (cfg("linear"), "base_model"),  # mergekit's linear averages the base too: it needs a weight
    (cfg("ties", weights=(1.0, 1.0), top={"trim": "layer"}), "parameters.trim"),
])
def test_bad_configs_name_the_key(config, key):
    with pytest.raises(MergekitConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        plan_of(config)


def test_missing_model_folder_is_named(tmp_path):
    (tmp_path / "base").mkdir()
    path = tmp_path / "merge.yml"
    path.write_text(yaml.safe_dump(cfg("ties", base=str(tmp_path / "base"))))
    with pytest.raises(MergekitConfigError, match=r"models\[0\]\.model"):
        read_config(path)


def test_export_yaml_round_trips():
    for method, params in [("tsv_m", {"alpha": 1.0, "k_frac": 0.2, "orthogonalisation": "procrustes",
                                      "rank_cut": "numerical"}),
                           ("knots", {"alpha": 0.6, "merge": "ties", "density": 0.2, "p": 0.1, "seed": 0,
                                      "concat": "columns", "rank_cut": "numerical"}),
                           ("task_arithmetic", {"alpha": 0.3}),
                           ("ties", {"alpha": 0.8, "density": 0.3, "trim": "global", "normalize": True}),
                           ("ties", {"alpha": 1.2, "density": 0.5, "trim": "per_tensor", "normalize": False}),
                           ("dare", {"alpha": 0.3, "p": 0.4, "merge": "ties", "density": 0.5, "seed": 3,
                                     "trim": "global", "normalize": True}),
                           ("weight_average", {})]:
        text = to_yaml(method, params, base="b", models=["t0", "t1"])
        plan = parse_config(yaml.safe_load(text), check_paths=False)
        assert (plan.method, plan.params, plan.weights) == (method, params, None)


# -- end to end over tiny GPT-2 folders ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_pool(tmp_path_factory):
    torch.set_num_threads(1)
    return F.write_tiny_gpt2_pool(tmp_path_factory.mktemp("gpt2"), tasks=("cola", "rte"))


def _raw(folder):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _write(tmp_path, config):
    path = tmp_path / "merge.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _models(pool, **params):
    return [{"model": str(p), "parameters": dict(params)} for p in pool["tasks"].values()]


def test_cli_mergekit_ties_equals_the_same_merge_by_method(gpt2_pool, tmp_path):
    config = {"merge_method": "ties", "base_model": str(gpt2_pool["base"]),
              "models": _models(gpt2_pool, weight=0.5, density=0.3), "parameters": {"lambda": 0.8}}
    cache = ["--cache-dir", str(tmp_path / "c"), "--device", "cpu"]
    assert main(["merge", "--mergekit-config", str(_write(tmp_path, config)), "-o", str(tmp_path / "mk"), *cache]) == 0
    assert main(["merge", "--base", str(gpt2_pool["base"]), "--finetuned", *map(str, gpt2_pool["tasks"].values()),
                 "--method", "ties", "--alpha", "0.8", "--param", "density=0.3", "--param", "trim=per_tensor",
                 "-o", str(tmp_path / "direct"), *cache]) == 0
    a, b = _raw(tmp_path / "mk"), _raw(tmp_path / "direct")
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_mergekit_weighted_task_arithmetic_and_dtype(gpt2_pool, tmp_path):
    weights = [0.7, 0.2]
    models = [{"model": str(p), "parameters": {"weight": w}} for p, w in zip(gpt2_pool["tasks"].values(), weights)]
    config = {"merge_method": "task_arithmetic", "base_model": str(gpt2_pool["base"]), "models": models,
              "parameters": {"lambda": 0.5}, "dtype": "bfloat16"}
    out = tmp_path / "out"
    assert main(["merge", "--mergekit-config", str(_write(tmp_path, config)), "-o", str(out),
                 "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]) == 0
    merged, base = _raw(out), _raw(gpt2_pool["base"])
    tasks = [_raw(p) for p in gpt2_pool["tasks"].values()]
    key = "h.0.mlp.c_fc.weight"
    expected = base[key].double() + 0.5 * sum(w * (t[f"transformer.{key}"].double() - base[key].double())
                                              for w, t in zip(weights, tasks))
    assert merged[key].dtype == torch.bfloat16
    torch.testing.assert_close(merged[key].double(), expected.to(torch.bfloat16).double(), atol=1e-2, rtol=1e-2)
    import json

    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_cli_runs_a_spectral_method_from_yaml(gpt2_pool, tmp_path):
    config = {"merge_method": "knots", "base_model": str(gpt2_pool["base"]),
              "models": [{"model": str(p)} for p in gpt2_pool["tasks"].values()],
              "parameters": {"merge": "ties", "density": 0.5, "alpha": 0.6, "concat": "rows"}}
    out = tmp_path / "k"
    assert main(["merge", "--mergekit-config", str(_write(tmp_path, config)), "-o", str(out),
                 "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]) == 0
    assert set(_raw(out)) == set(_raw(gpt2_pool["base"]))


@pytest.mark.parametrize("config,key", [
    ({"merge_method": "frankenmerge", "base_model": "B", "models": [{"model": "T"}]}, "merge_method"),
    ({"merge_method": "ties", "base_model": "B"}, "models"),
    ({"merge_method": "ties", "base_model": "B", "models": [{"model": "T", "parameters": {"weight": "x"}}]},
     "models[0].parameters.weight"),
    ({"merge_method": "ties", "base_model": "B", "models": [{"model": "T"}], "slices": []}, "slices"),
    ({"merge_method": "ties", "base_model": "B", "models": [{"model": "/nonexistent/t", "parameters": {"weight": 1}}]},
     "models[0].model"),
])
def test_cli_bad_config_exits_2_naming_the_key(gpt2_pool, tmp_path, capsys, config, key):
    config = yaml.safe_load(yaml.safe_dump(config).replace("B", str(gpt2_pool["base"]))
                            .replace("model: T", f"model: {gpt2_pool['tasks']['cola']}"))
    code = main(["merge", "--mergekit-config", str(_write(tmp_path, config)), "-o", str(tmp_path / "o")])
    assert code == 2
    assert key in capsys.readouterr().err


def test_cli_mergekit_config_excludes_method_flags(gpt2_pool, tmp_path, capsys):
    config = {"merge_method": "ties", "base_model": str(gpt2_pool["base"]), "models": _models(gpt2_pool, weight=1.0)}
    code = main(["merge", "--mergekit-config", str(_write(tmp_path, config)), "--method", "tsv_m", "-o",
                 str(tmp_path / "o")])
    assert code == 2 and "--method" in capsys.readouterr().err


def test_pool_yaml_names_the_folders_of_a_hugging_face_pool(gpt2_pool, tmp_path):
    from spectral.checkpoints.hf_pool import HFPool
    from spectral.mergekit import pool_yaml

    pool = HFPool.from_folders(gpt2_pool["base"], list(gpt2_pool["tasks"].values()))
    text, real = pool_yaml(pool, "knots", {"alpha": 0.6, "merge": "ties", "density": 0.2, "p": 0.1, "seed": 0,
                                           "concat": "rows", "rank_cut": "numerical"})
    assert real
    plan = read_config(_write(tmp_path, yaml.safe_load(text)))  # the paths exist
    assert plan.base.resolve() == Path(gpt2_pool["base"]).resolve()
    assert [p.resolve() for p in plan.models] == [Path(p).resolve() for p in gpt2_pool["tasks"].values()]
    assert plan.method == "knots" and plan.params["concat"] == "rows"


def test_weighted_taskset_scales_task_vectors_and_keys_its_cache(tmp_path):
    from helpers import make_vit_state_dicts

    from spectral import Engine, TaskSet
    from spectral.mergekit import WeightedTaskSet

    base, ft = make_vit_state_dicts(num_tasks=3, seed=1)
    weights = [0.5, 2.0, -1.0]
    scaled = {t: {k: (base[k].double() + w * (v.double() - base[k].double())).to(v.dtype)
                  if v.is_floating_point() else v for k, v in sd.items()} for (t, sd), w in zip(ft.items(), weights)}
    plain = TaskSet(base, ft)
    weighted = WeightedTaskSet(plain, weights)
    key = plain.matrix_keys[0]
    assert weighted.matrix_hash(1, key) != plain.matrix_hash(1, key)
    torch.testing.assert_close(weighted.task_matrix(1, key), 2.0 * plain.task_matrix(1, key))
    cache = tmp_path / "c"
    Engine(plain, cache_dir=cache, device="cpu").build_cache()  # plain factors in the same cache are never read
    got = Engine(weighted, cache_dir=cache, device="cpu").merge("tsv_m", alpha=0.9)
    want = Engine(TaskSet(base, scaled), cache_dir=tmp_path / "d", device="cpu").merge("tsv_m", alpha=0.9)
    for k in got:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-4)
