"""Tiny Hugging Face text classifiers written by ``save_pretrained`` (GPT-2 and RoBERTa, with a ByteLevel BPE
tokenizer trained here by the ``tokenizers`` library; nothing downloaded) and a test double of the language-model
pool seam (``task_model`` / ``tokenizer`` / ``dataset`` / ``metric``) that loads them with their transformers class."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from spectral.data.glue import TextSplit

CORPUS = [
    "the cat sat on the mat", "a dog ran in the park", "is it raining today?", "no, it is sunny and warm",
    "John said \"he will come\" tomorrow", "the quick brown fox jumps over the lazy dog",
    "what time is it?", "it is late", "they are not happy about the result", "she reads books every day",
]

SENTENCES = [
    "the cat", "a dog ran in the park and the cat sat on the mat", "is it?", "no",
    "John said \"he will come\" tomorrow, it is late", "the quick brown fox", "what time is it now in the park?",
    "they are not happy", "she reads books every day and every night", "it", "the lazy dog sat on the warm mat",
    "a", "sunny", "the result is not happy about the cat", "what?", "every day the dog jumps over the fox",
    "they said", "is the cat on the mat?", "rain", "books",
]
PAIRS = [SENTENCES[(3 * i + 1) % len(SENTENCES)] for i in range(len(SENTENCES))]


def train_tokenizer_files(vocab_size: int = 300) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a tiny ByteLevel BPE trained on :data:`CORPUS`."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS * 5, vocab_size=vocab_size, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"])
    merges = [tuple(m) for m in json.loads(tok._tokenizer.to_str())["model"]["merges"]]
    return tok.get_vocab(), merges  # type: ignore[return-value]


def _sharpen_head(model: torch.nn.Module, names: tuple[str, ...], scale: float) -> None:
    """Random heads of std 0.02 predict one class; a larger head gives mixed predictions (a livelier test)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(names) and name.endswith("weight"):
                p.mul_(scale)


def save_gpt2_classifier(folder: Path, *, num_labels: int = 2, seed: int = 0, pad_in_config: bool = True) -> Path:
    """A 2-layer width-32 ``GPT2ForSequenceClassification`` + GPT-2 tokenizer in ``folder`` (pad = EOS in the
    config as FusionBench's fine-tunes have it, or no pad id at all)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2TokenizerFast

    vocab, merges = train_tokenizer_files()
    tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, num_labels=num_labels,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.eos_token_id if pad_in_config else None)
    model = GPT2ForSequenceClassification(cfg).eval()
    _sharpen_head(model, ("score",), 40.0)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def save_roberta_classifier(folder: Path, *, num_labels: int = 2, seed: int = 0) -> Path:
    """A 2-layer width-32 ``RobertaForSequenceClassification`` + RoBERTa tokenizer in ``folder``."""
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    vocab, merges = train_tokenizer_files()
    tok = RobertaTokenizerFast(vocab=vocab, merges=merges)
    torch.manual_seed(seed)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, num_labels=num_labels)
    model = RobertaForSequenceClassification(cfg).eval()
    _sharpen_head(model, ("classifier",), 40.0)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def canonical_body(model: torch.nn.Module) -> dict[str, Tensor]:
    """The body in the interface's canonical form: the base model's own keys, GPT-2's Conv1D weights out × in."""
    from transformers.pytorch_utils import Conv1D

    base = model.base_model
    conv = {f"{name}.weight" for name, m in base.named_modules() if isinstance(m, Conv1D)}
    return {k: (v.T.contiguous() if k in conv else v.clone()) for k, v in base.state_dict().items()}


def load_body(model: torch.nn.Module, body: Mapping[str, Tensor]) -> None:
    from transformers.pytorch_utils import Conv1D

    base = model.base_model
    conv = {f"{name}.weight" for name, m in base.named_modules() if isinstance(m, Conv1D)}
    base.load_state_dict({k: (v.T if k in conv else v) for k, v in body.items()}, strict=True)


class SavedModelPool:
    """Test double of the pool seam over ``save_pretrained`` folders: task → (folder, TextSplit, metric)."""

    def __init__(self, tasks: Mapping[str, tuple[Path, TextSplit, str]]) -> None:
        self.tasks = dict(tasks)
        self.task_names = list(self.tasks)
        self.built: list[str] = []

    def model_class(self, task: str):
        from transformers import AutoConfig, AutoModelForSequenceClassification

        AutoConfig.from_pretrained(self.tasks[task][0])  # fails loudly on a bad folder
        return AutoModelForSequenceClassification

    def reference_model(self, task: str) -> torch.nn.Module:
        """The fine-tune as transformers loads it (the independent reference)."""
        return self.model_class(task).from_pretrained(self.tasks[task][0]).eval()

    def task_model(self, task: str, body: Mapping[str, Tensor], device: str | torch.device = "cpu") -> torch.nn.Module:
        model = self.reference_model(task)
        load_body(model, body)
        self.built.append(task)
        return model.to(device).eval()

    def tokenizer(self, task: str | None = None):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.tasks[task or self.task_names[0]][0])
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok

    def dataset(self, task: str, split: str = "test") -> TextSplit:
        return self.tasks[task][1]

    def metric(self, task: str) -> str:
        return self.tasks[task][2]


def make_split(name: str, labels: list[int], *, pairs: bool, num_labels: int = 2) -> TextSplit:
    n = len(labels)
    a = [SENTENCES[i % len(SENTENCES)] for i in range(n)]
    b = [PAIRS[i % len(PAIRS)] for i in range(n)] if pairs else None
    return TextSplit(name, "test", a, b, list(labels), num_labels)


def one_at_a_time_logits(model: torch.nn.Module, tokenizer, split: TextSplit) -> Tensor:
    """Logits of every example from an unpadded forward of that example alone (float32, (n, num_labels))."""
    rows = []
    with torch.inference_mode():
        for i in range(len(split)):
            enc = tokenizer(split.text_a[i], split.text_b[i], return_tensors="pt") if split.text_b is not None \
                else tokenizer(split.text_a[i], return_tensors="pt")
            rows.append(model(**enc).logits[0].float())
    return torch.stack(rows)
