"""Tiny Hugging Face language-model pools for tests, written with ``save_pretrained``; nothing is downloaded.

``write_tiny_gpt2_pool(root)`` writes ``root/gpt2`` (a bare ``GPT2Model``) and ``root/gpt2_<task>``
(``GPT2ForSequenceClassification``, pad = EOS), each with a ByteLevel BPE tokenizer trained here by ``tokenizers``;
``write_tiny_roberta_pool`` the same with ``RobertaModel`` (with its pooler) and ``RobertaForSequenceClassification``;
``write_tiny_llama_pool`` a ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` base (untied ``lm_head``) with
``*ForSequenceClassification`` fine-tunes. A fine-tune is the base's weights plus seeded noise, and a seeded head.
Same arguments, same bytes: two calls with other ``fmt`` values give the same weights in other file layouts.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

GPT2_EOS = "<|endoftext|>"
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")
NUM_LABELS = {"mnli": 3}
_WORDS = ("the a cat dog runs sat on mat good bad movie film great awful is was not very and or but what who "
          "where why how question answer yes no same different sentence pair entails contradicts neutral").split()


def _corpus(n: int = 400) -> list[str]:
    g = torch.Generator().manual_seed(1234)
    lines = []
    for _ in range(n):
        idx = torch.randint(len(_WORDS), (int(torch.randint(3, 12, (1,), generator=g)),), generator=g)
        lines.append(" ".join(_WORDS[i] for i in idx.tolist()) + ".")
    return lines


@functools.lru_cache(maxsize=None)
def _bpe_json(specials: tuple[str, ...], vocab_size: int) -> str:
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(_corpus(), vocab_size=vocab_size, min_frequency=1, special_tokens=list(specials),
                            show_progress=False)
    return tok._tokenizer.to_str()


def _tokenizer_object(specials: tuple[str, ...], vocab_size: int) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_bpe_json(specials, vocab_size))


def gpt2_tokenizer(vocab_size: int = 300) -> Any:
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast(tokenizer_object=_tokenizer_object((GPT2_EOS,), vocab_size), bos_token=GPT2_EOS,
                             eos_token=GPT2_EOS, unk_token=GPT2_EOS)


def roberta_tokenizer(vocab_size: int = 300) -> Any:
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    obj = _tokenizer_object(ROBERTA_SPECIALS, vocab_size)
    obj.post_processor = RobertaProcessing(("</s>", obj.token_to_id("</s>")), ("<s>", obj.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=obj, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def llama_tokenizer(vocab_size: int = 300) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_tokenizer_object(LLAMA_SPECIALS, vocab_size), unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>")


def _perturb(model: torch.nn.Module, seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _save(model: Any, folder: Path, tokenizer: Any, fmt: str) -> Path:
    """``safetensors`` (save_pretrained), ``sharded`` (several safetensors + index) or ``bin`` (pytorch_model.bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        model.save_pretrained(folder)
    elif fmt == "sharded":
        model.save_pretrained(folder, max_shard_size="20KB")
        assert (folder / "model.safetensors.index.json").is_file(), "expected a sharded save"
    elif fmt == "bin":
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(folder)
        torch.save({k: v.clone().contiguous() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    else:
        raise ValueError(fmt)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def _write_pool(root: Path, base_name: str, tasks: tuple[str, ...], make_base: Any, make_task: Any, body_attr: str,
                tokenizer: Any, fmt: str, base_fmt: str | None, seed: int, scale: float) -> dict[str, Any]:
    root = Path(root)
    torch.manual_seed(seed)
    base = make_base()
    paths = {"root": root, "base": _save(base, root / base_name, tokenizer, base_fmt or fmt), "tasks": {}}
    base_state = base.state_dict()
    for i, task in enumerate(tasks):
        torch.manual_seed(seed + 100 + i)
        model = make_task(NUM_LABELS.get(task, 2))
        body = getattr(model, body_attr)
        own = body.state_dict()
        body.load_state_dict({k: base_state[k] for k in own if k in base_state}
                             | {k: base_state[f"{body_attr}.{k}"] for k in own if f"{body_attr}.{k}" in base_state})
        _perturb(body, seed + 1000 + i, scale)
        paths["tasks"][task] = _save(model, root / f"{base_name}_{task}", tokenizer, fmt)
    return paths


def write_tiny_gpt2_pool(root: str | Path, tasks: tuple[str, ...] = ("cola", "sst2", "rte"), *, fmt: str = "safetensors",
                         base_fmt: str | None = None, seed: int = 0, scale: float = 0.02, n_embd: int = 32,
                         vocab_size: int = 300, base_name: str = "gpt2") -> dict[str, Any]:
    """``root/gpt2`` (bare GPT2Model) and ``root/gpt2_<task>`` (GPT2ForSequenceClassification, pad = EOS)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2Model

    tok = gpt2_tokenizer(vocab_size)
    eos = tok.convert_tokens_to_ids(GPT2_EOS)

    def config(**kw: Any) -> Any:
        return GPT2Config(n_embd=n_embd, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=32,
                          bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **kw)

    return _write_pool(Path(root), base_name, tasks, lambda: GPT2Model(config()),
                       lambda n: GPT2ForSequenceClassification(config(num_labels=n)), "transformer", tok, fmt,
                       base_fmt, seed, scale)


def write_tiny_roberta_pool(root: str | Path, tasks: tuple[str, ...] = ("cola", "sst2", "rte"), *,
                            fmt: str = "safetensors", base_fmt: str | None = None, seed: int = 0, scale: float = 0.02,
                            vocab_size: int = 300, base_name: str = "roberta") -> dict[str, Any]:
    """``root/roberta`` (RobertaModel with its pooler) and ``root/roberta_<task>`` (RobertaForSequenceClassification)."""
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaModel

    tok = roberta_tokenizer(vocab_size)

    def config(**kw: Any) -> Any:
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             vocab_size=len(tok), max_position_embeddings=40, type_vocab_size=1,
                             pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, **kw)

    return _write_pool(Path(root), base_name, tasks, lambda: RobertaModel(config(), add_pooling_layer=True),
                       lambda n: RobertaForSequenceClassification(config(num_labels=n)), "roberta", tok, fmt,
                       base_fmt, seed, scale)


def write_tiny_llama_pool(root: str | Path, tasks: tuple[str, ...] = ("cola", "sst2"), *, model_type: str = "llama",
                          fmt: str = "safetensors", base_fmt: str | None = None, seed: int = 0, scale: float = 0.02,
                          vocab_size: int = 300, base_name: str | None = None) -> dict[str, Any]:
    """``root/<model_type>`` (*ForCausalLM, untied lm_head) and ``root/<model_type>_<task>`` (*ForSequenceClassification)."""
    import transformers

    prefix = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral"}[model_type]
    config_cls = getattr(transformers, f"{prefix}Config")
    tok = llama_tokenizer(vocab_size)
    pad = tok.convert_tokens_to_ids("</s>")

    def config(**kw: Any) -> Any:
        return config_cls(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=64,
                          tie_word_embeddings=False, pad_token_id=pad, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, **kw)

    return _write_pool(Path(root), base_name or model_type, tasks,
                       lambda: getattr(transformers, f"{prefix}ForCausalLM")(config()),
                       lambda n: getattr(transformers, f"{prefix}ForSequenceClassification")(config(num_labels=n)),
                       "model", tok, fmt, base_fmt, seed, scale)


def write_pool_yaml(paths: dict[str, Any], *, data: dict[str, str] | None = None) -> Path:
    """``root/pool.yaml`` naming the base and every task (paths relative to the file)."""
    root = Path(paths["root"])
    lines = [f"base: {Path(paths['base']).name}/", "tasks:"]
    for task, folder in paths["tasks"].items():
        entry = {"name": task, "checkpoint": f"{Path(folder).name}/"}
        if data and task in data:
            entry["data"] = data[task]
        lines.append(f"  - {json.dumps(entry)}")
    (root / "pool.yaml").write_text("\n".join(lines) + "\n")
    return root / "pool.yaml"


# -- causal-LM pools whose tasks are JSONL text files (issue 25: quality from a text file) ---------------------------
#: per task: the words its texts are made of, and whether its file is prompt/completion lines
CAUSAL_TASKS: dict[str, tuple[str, bool]] = {
    "math": ("one two three four plus minus equals is", False),
    "code": ("def return if else x y call print", False),
    "chat": ("hello hi how are you fine thanks bye", True),
}


def causal_task_lines(task: str, n: int = 12, seed: int = 0) -> list[dict[str, str]]:
    """``n`` JSONL rows of a task: short word sequences from its own vocabulary (``text`` rows, or ``prompt`` /
    ``completion`` rows for a task marked so in :data:`CAUSAL_TASKS`)."""
    words, paired = CAUSAL_TASKS[task]
    vocab = words.split()
    g = torch.Generator().manual_seed(seed + sum(map(ord, task)))
    rows = []
    for _ in range(n):
        k = int(torch.randint(4, 10, (1,), generator=g))
        seq = [vocab[i] for i in torch.randint(len(vocab), (k,), generator=g).tolist()]
        if paired:
            cut = max(1, k // 2)
            rows.append({"prompt": " ".join(seq[:cut]), "completion": " " + " ".join(seq[cut:])})
        else:
            rows.append({"text": " ".join(seq)})
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_tiny_causal_pool(root: str | Path, tasks: tuple[str, ...] = ("math", "code", "chat"), *,
                           model_type: str = "llama", steps: int = 6, lr: float = 3e-2, seed: int = 0,
                           vocab_size: int = 300, n_lines: int = 12, base_name: str | None = None) -> dict[str, Any]:
    """A decoder-LLM pool of full fine-tunes: ``root/<model_type>`` (``LlamaForCausalLM`` / ``GPT2LMHeadModel``,
    random weights) and ``root/<model_type>_<task>``, each the base trained ``steps`` Adam steps on its task's
    text (transformers' own loss); ``root/<task>.jsonl`` (test) and ``root/<task>.val.jsonl`` (val), and
    ``root/pool.yaml`` naming them. Deterministic for the same arguments."""
    import transformers

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = base_name or model_type
    if model_type == "gpt2":
        tok = gpt2_tokenizer(vocab_size)
        eos = tok.convert_tokens_to_ids(GPT2_EOS)
        config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=64,
                                         bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        cls = transformers.GPT2LMHeadModel
    else:
        prefix = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral"}[model_type]
        tok = llama_tokenizer(vocab_size)
        config = getattr(transformers, f"{prefix}Config")(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            vocab_size=len(tok), max_position_embeddings=64, tie_word_embeddings=False,
            pad_token_id=tok.convert_tokens_to_ids("</s>"), bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id)
        cls = getattr(transformers, f"{prefix}ForCausalLM")
    torch.manual_seed(seed)
    base = cls(config)
    paths: dict[str, Any] = {"root": root, "base": _save(base, root / name, tok, "safetensors"), "tasks": {},
                             "data": {}}
    pad = config.pad_token_id
    for i, task in enumerate(tasks):
        test = _write_jsonl(root / f"{task}.jsonl", causal_task_lines(task, n_lines, seed))
        _write_jsonl(root / f"{task}.val.jsonl", causal_task_lines(task, n_lines, seed + 7))
        paths["data"][task] = test
        train = causal_task_lines(task, 32, seed + 99)
        torch.manual_seed(seed + 100 + i)
        model = cls(config)
        model.load_state_dict(base.state_dict())
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        enc = [tok((r.get("prompt", "") + r.get("completion", "")) if "completion" in r else r["text"])["input_ids"]
               for r in train]
        width = max(map(len, enc))
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, e in enumerate(enc):
            ids[j, :len(e)] = torch.as_tensor(e)
            mask[j, :len(e)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        for _ in range(steps):
            opt.zero_grad()
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
        model.eval()
        paths["tasks"][task] = _save(model, root / f"{name}_{task}", tok, "safetensors")
    lines = [f"base: {name}/", "tasks:"]
    for task in tasks:
        lines.append("  - " + json.dumps({"name": task, "checkpoint": f"{name}_{task}/", "data": f"{task}.jsonl"}))
    (root / "pool.yaml").write_text("\n".join(lines) + "\n")
    paths["yaml"] = root / "pool.yaml"
    return paths
