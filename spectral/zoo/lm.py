"""The language demo zoo ``lm-zoo-7``: a tiny GPT-2 pre-trained here on generated text and fine-tuned on seven
generated tasks shaped like GLUE's, written as standard Hugging Face folders and GLUE TSV files, built offline.

Layout (the seam agreed for issue 23)::

    <root>/gpt2/             bare GPT2Model (config.json, model.safetensors) + tokenizer files
    <root>/gpt2_<task>/      GPT2ForSequenceClassification (pad_token_id = eos) + tokenizer files
    <root>/glue/<CoLA|SST-2|MRPC|QQP|MNLI|QNLI|RTE>/train.tsv, dev.tsv (MNLI: dev_matched.tsv), GLUE's own layout
    <root>/pool.yaml         base: gpt2/, tasks: [{name, checkpoint, dataset, data}]
    <root>/manifest.json     seed, configuration, timings and the dev scores measured at build time

The seven tasks share one small world (names, objects, places, days, verbs with their tenses, passives and
synonyms) and its grammar, as real language tasks share English: the pre-training corpus is text of that world
(declaratives, passives, questions, negations, reviews, short documents restating one event), and each task asks
for a judgement the language-model objective never made explicit at the sentence's last token (acceptability,
polarity under negation and "but", whether two sentences or questions say the same thing, entailment, whether a
sentence answers a question). A head trained on top of the fine-tuned body is therefore near chance on the
pre-trained body, as for GPT-2 on GLUE.

Pairs are tokenised as ``tokenizer(text_a, text_b)`` (GPT-2 adds no special token, the second text's first word
carries no leading space), padded on the right with the EOS token, and pooled at the last non-pad token, exactly
as ``GPT2ForSequenceClassification`` does; the evaluation must tokenise the same way.

The build runs in one thread with seeded generators, so a seed gives bit-identical files; it is written into a
temporary sibling folder and renamed into place (:func:`spectral.io.atomic_folder`).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from spectral.cache import default_cache_dir
from spectral.errors import SpectralError
from spectral.io import atomic_folder

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

LM_ZOO_NAME = "lm-zoo-7"
LM_ZOO_VERSION = "1"
EOS = "<|endoftext|>"

#: (task, GLUE folder, number of labels, metric) in GLUE's order
LM_TASKS: tuple[tuple[str, str, int, str], ...] = (
    ("cola", "CoLA", 2, "mcc"),
    ("sst2", "SST-2", 2, "accuracy"),
    ("mrpc", "MRPC", 2, "accuracy"),
    ("qqp", "QQP", 2, "accuracy"),
    ("mnli", "MNLI", 3, "accuracy"),
    ("qnli", "QNLI", 2, "accuracy"),
    ("rte", "RTE", 2, "accuracy"),
)
TASK_NAMES: tuple[str, ...] = tuple(t for t, *_ in LM_TASKS)
GLUE_FOLDER = {t: d for t, d, *_ in LM_TASKS}
NUM_LABELS = {t: n for t, _, n, _ in LM_TASKS}
METRIC = {t: m for t, _, _, m in LM_TASKS}
#: label words of the GLUE files, indexed by the hub's integer labels
MNLI_LABELS = ("entailment", "neutral", "contradiction")
NLI2_LABELS = ("entailment", "not_entailment")


class LMZooError(SpectralError):
    """The language demo zoo cannot be built."""


def _noop(i: int, n: int, text: str) -> None:
    return None


# ---------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class LMZooConfig:
    """Everything that determines the language zoo's content, besides the seed."""

    size: str = "full"
    vocab_size: int = 768
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    n_positions: int = 64
    pretrain_sentences: int = 16000
    pretrain_steps: int = 700
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    #: fine-tuning steps per task (the single-sentence tasks converge sooner)
    finetune_steps: dict[str, int] = field(default_factory=lambda: {
        "cola": 150, "sst2": 200, "mrpc": 200, "qqp": 200, "mnli": 200, "qnli": 200, "rte": 200})
    finetune_batch: int = 32
    finetune_lr: float = 5e-4
    warmup_frac: float = 0.1
    #: train examples per task (GLUE's tasks differ in size; so do these)
    n_train: dict[str, int] = field(default_factory=lambda: {
        "cola": 3000, "sst2": 3000, "mrpc": 2000, "qqp": 4000, "mnli": 4000, "qnli": 4000, "rte": 1500})
    n_dev: int = 400

    @classmethod
    def of_size(cls, size: str) -> "LMZooConfig":
        if size == "full":
            return cls()
        if size == "micro":
            return cls(size="micro", vocab_size=320, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                       pretrain_sentences=1500, pretrain_steps=100, pretrain_batch=32, pretrain_lr=3e-3,
                       finetune_steps={t: 100 for t in TASK_NAMES}, finetune_batch=16, finetune_lr=2e-3,
                       n_train={t: 384 for t in TASK_NAMES}, n_dev=128)
        raise LMZooError(f"lm zoo size must be 'full' or 'micro', not {size!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lm_zoo_root(cache_dir: str | Path | None = None, size: str = "full") -> Path:
    """``<cache>/zoo/lm-zoo-7`` (``lm-zoo-7-micro`` for the micro size); cache from ``$SPECTRAL_CACHE_DIR``."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "zoo" / (LM_ZOO_NAME if size == "full" else f"{LM_ZOO_NAME}-{size}")


def is_lm_zoo_built(root: str | Path) -> bool:
    root = Path(root)
    return (root / "pool.yaml").is_file() and (root / "manifest.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# the world and its grammar

NAMES = ("alice", "bob", "carol", "dave", "emma", "frank", "grace", "henry", "iris", "jack", "kate", "leo",
         "mia", "nick", "olga", "paul")
NOUNS = (("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"), ("book", "books"),
         ("ball", "balls"), ("box", "boxes"), ("cake", "cakes"), ("apple", "apples"), ("car", "cars"),
         ("hat", "hats"), ("key", "keys"), ("letter", "letters"), ("lamp", "lamps"), ("cup", "cups"),
         ("kite", "kites"))
ADJS = ("small", "big", "red", "blue", "green", "old", "new", "heavy", "bright", "quiet")
ADJ_SYNONYM = {"small": "little", "big": "large", "quiet": "silent", "bright": "shiny", "old": "ancient"}
ADJ_OPPOSITE = {"small": "big", "big": "small", "old": "new", "new": "old", "quiet": "loud", "heavy": "light",
                "red": "blue", "blue": "green", "green": "red", "bright": "dark"}
PLACES = ("park", "garden", "kitchen", "city", "school", "market", "river", "forest", "station", "library")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# base, 3rd person singular, past, participle
VERBS = (("see", "sees", "saw", "seen"), ("find", "finds", "found", "found"), ("take", "takes", "took", "taken"),
         ("buy", "buys", "bought", "bought"), ("like", "likes", "liked", "liked"),
         ("carry", "carries", "carried", "carried"), ("want", "wants", "wanted", "wanted"),
         ("hold", "holds", "held", "held"), ("lose", "loses", "lost", "lost"), ("clean", "cleans", "cleaned",
                                                                                  "cleaned"))
VERB_SYNONYM = {"bought": "purchased", "found": "discovered", "saw": "noticed", "took": "grabbed",
                "liked": "enjoyed", "carried": "moved"}
REVIEW_THINGS = ("movie", "film", "story", "show", "song", "meal", "book", "play", "game", "album")
REVIEW_PARTS = ("acting", "ending", "music", "plot", "food", "service", "writing", "start")
POSITIVE = ("good", "great", "wonderful", "excellent", "lovely", "fun", "brilliant", "charming")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "weak", "painful")
INTENSIFIERS = ("very", "really", "quite", "truly", "so")


@dataclass
class Event:
    """One event of the world: ``agent verb [the adj] obj [in the place] [on day]``."""

    agent: str
    verb: int
    noun: int
    plural: bool
    adj: str | None
    place: str | None
    day: str | None

    def copy(self, **changes: Any) -> "Event":
        data = dict(self.__dict__)
        data.update(changes)
        return Event(**data)


def _event(rng: random.Random, *, place: float = 0.5, day: float = 0.3, adj: float = 0.5) -> Event:
    return Event(agent=rng.choice(NAMES), verb=rng.randrange(len(VERBS)), noun=rng.randrange(len(NOUNS)),
                 plural=rng.random() < 0.3, adj=rng.choice(ADJS) if rng.random() < adj else None,
                 place=rng.choice(PLACES) if rng.random() < place else None,
                 day=rng.choice(DAYS) if rng.random() < day else None)


def _np(e: Event, det: str = "the", synonym: bool = False) -> str:
    noun = NOUNS[e.noun][1 if e.plural else 0]
    adj = e.adj
    if adj is not None and synonym:
        adj = ADJ_SYNONYM.get(adj, adj)
    det = "the" if det == "the" or e.plural else det
    return " ".join(w for w in (det, adj, noun) if w)


def _tail(e: Event) -> list[str]:
    out = []
    if e.place:
        out.append(f"in the {e.place}")
    if e.day:
        out.append(f"on {e.day}")
    return out


def _past(e: Event, synonym: bool = False) -> str:
    past = VERBS[e.verb][2]
    return VERB_SYNONYM.get(past, past) if synonym else past


def render(e: Event, style: str = "active", *, synonym: bool = False, agent: str | None = None,
           front_day: bool = False) -> str:
    """A sentence stating ``e``: ``active`` (past), ``passive`` or ``present``."""
    who = agent or e.agent
    tail = _tail(e)
    if front_day and e.day:
        tail = [t for t in tail if not t.startswith("on ")]
    if style == "active":
        words = [who, _past(e, synonym), _np(e, synonym=synonym)] + tail
    elif style == "passive":
        aux = "were" if e.plural else "was"
        part = VERBS[e.verb][3]
        words = [_np(e, synonym=synonym), aux, part, "by", who] + tail
    elif style == "present":
        words = [who, VERBS[e.verb][1], _np(e, synonym=synonym)] + tail
    else:
        raise LMZooError(f"unknown style {style!r}")
    if front_day and e.day:
        words = [f"on {e.day} ,"] + words
    return " ".join(words) + " ."


def render_negated(e: Event) -> str:
    return " ".join([e.agent, "did not", VERBS[e.verb][0], _np(e)] + _tail(e)) + " ."


def question(e: Event, wh: str, style: str = "active") -> str:
    """A question about ``e`` asking ``wh`` (where / when / who / what)."""
    base = VERBS[e.verb][0]
    if wh == "who":
        rest = [_past(e), _np(e)] + _tail(e) if style == "active" else \
            ["was" if not e.plural else "were", _np(e), VERBS[e.verb][3], "by"] + _tail(e)
        words = ["who"] + rest
    elif wh == "what":
        words = ["what", "did", e.agent, base] + _tail(e)
    elif wh in ("where", "when"):
        drop = "in the" if wh == "where" else "on"
        tail = [t for t in _tail(e) if not t.startswith(drop)]
        if style == "active":
            words = [wh, "did", e.agent, base, _np(e)] + tail
        else:
            words = [wh, "was" if not e.plural else "were", _np(e), VERBS[e.verb][3], "by", e.agent] + tail
    else:
        raise LMZooError(f"unknown question word {wh!r}")
    return " ".join(words) + " ?"


def review(rng: random.Random) -> tuple[str, int]:
    """A short review and its polarity (1 positive): negation flips it, ``but`` hands it to the second clause."""
    thing = rng.choice(REVIEW_THINGS)

    def clause(subject: str) -> tuple[str, int]:
        pol = rng.random() < 0.5
        word = rng.choice(POSITIVE if pol else NEGATIVE)
        neg = rng.random() < 0.3
        inten = rng.choice(INTENSIFIERS) + " " if rng.random() < 0.4 else ""
        verb = "was not" if neg else "was"
        return f"{subject} {verb} {inten}{word}", int(pol) ^ int(neg)

    kind = rng.random()
    if kind < 0.35:
        text, label = clause(f"the {thing}")
    elif kind < 0.6:
        a, _ = clause(f"the {rng.choice(REVIEW_PARTS)}")
        b, label = clause(f"the {thing}")
        text = f"{a} but {b}"
    elif kind < 0.8:
        c, label = clause(f"the {thing}")
        text = f"{rng.choice(NAMES)} said {c}"
    else:
        c, label = clause(f"the {rng.choice(REVIEW_PARTS)} of the {thing}")
        text = f"{c} and {rng.choice(NAMES)} saw it on {rng.choice(DAYS)}"
    return text + " .", label


# ---------------------------------------------------------------------------------------------------------------
# the pre-training corpus


def pretrain_corpus(rng: random.Random, n: int) -> list[str]:
    """``n`` short documents of the world's text (no task labels)."""
    docs = []
    for _ in range(n):
        k = rng.random()
        e = _event(rng)
        if k < 0.3:
            docs.append(render(e, rng.choice(("active", "active", "passive", "present"))))
        elif k < 0.45:  # one event told twice, as documents restate things
            docs.append(render(e, "active") + " " + render(e, "passive", synonym=rng.random() < 0.5))
        elif k < 0.6:
            wh = rng.choice(("where", "when", "who", "what"))
            e2 = e.copy(place=e.place or rng.choice(PLACES), day=e.day or rng.choice(DAYS))
            docs.append(question(e2, wh) + " " + render(e2, "active"))
        elif k < 0.7:
            docs.append(render_negated(e))
        elif k < 0.85:
            docs.append(review(rng)[0])
        else:
            e2 = _event(rng)
            docs.append(render(e, "active") + " then " + render(e2, rng.choice(("active", "passive"))))
    return docs


# ---------------------------------------------------------------------------------------------------------------
# the seven tasks: (text_a, text_b | None, label) with the hub's integer labels


Example = tuple[str, "str | None", int]


def _swap_adjacent(words: list[str], rng: random.Random) -> list[str]:
    i = rng.randrange(0, len(words) - 2)  # never the final "."
    words = list(words)
    words[i], words[i + 1] = words[i + 1], words[i]
    return words


def gen_cola(rng: random.Random) -> Example:
    """Acceptability (CoLA): 1 acceptable. Violations sit anywhere but at the end: agreement, word order,
    ``did`` + past, wrong participle, doubled or missing words."""
    e = _event(rng)
    ok = rng.random() < 0.6
    kind = rng.randrange(4)
    if kind == 0:  # present tense: agreement
        subject_plural = rng.random() < 0.4
        subject = _np(e.copy(plural=subject_plural, noun=rng.randrange(len(NOUNS)), adj=None))
        verb = VERBS[e.verb][0] if subject_plural else VERBS[e.verb][1]
        if not ok:
            verb = VERBS[e.verb][1] if subject_plural else VERBS[e.verb][0]
        text = " ".join([subject, verb, _np(e)] + _tail(e)) + " ."
    elif kind == 1:  # negation: did not + base form
        form = VERBS[e.verb][0] if ok else VERBS[e.verb][2]
        if not ok and form == VERBS[e.verb][0]:
            form = VERBS[e.verb][1]
        text = " ".join([e.agent, "did not", form, _np(e)] + _tail(e)) + " ."
    elif kind == 2:  # passive: participle
        part = VERBS[e.verb][3]
        if not ok:
            part = VERBS[e.verb][0] if VERBS[e.verb][3] == VERBS[e.verb][2] else VERBS[e.verb][2]
        text = " ".join([_np(e), "were" if e.plural else "was", part, "by", e.agent] + _tail(e)) + " ."
    else:  # word order / doubled / missing words
        words = render(e, "active").split()
        if not ok:
            r = rng.random()
            if r < 0.5:
                words = _swap_adjacent(words, rng)
            elif r < 0.75:
                i = rng.randrange(0, len(words) - 1)
                words = words[:i + 1] + [words[i]] + words[i + 1:]
            else:
                i = rng.randrange(1, len(words) - 1)
                words = words[:i] + words[i + 1:]
        text = " ".join(words)
    return text, None, int(ok)


def gen_sst2(rng: random.Random) -> Example:
    text, label = review(rng)
    return text, None, label


def _different(e: Event, rng: random.Random, *, fields: Sequence[str] = ("agent", "noun", "place", "day", "adj",
                                                                           "verb")) -> Event:
    """``e`` with one content word changed (a near miss)."""
    f = rng.choice(fields)
    if f == "agent":
        return e.copy(agent=rng.choice([n for n in NAMES if n != e.agent]))
    if f == "noun":
        return e.copy(noun=rng.choice([i for i in range(len(NOUNS)) if i != e.noun]))
    if f == "verb":
        return e.copy(verb=rng.choice([i for i in range(len(VERBS)) if i != e.verb]))
    if f == "place":
        return e.copy(place=rng.choice([p for p in PLACES if p != e.place]))
    if f == "day":
        return e.copy(day=rng.choice([d for d in DAYS if d != e.day]))
    return e.copy(adj=rng.choice([a for a in ADJS if a != e.adj and ADJ_SYNONYM.get(e.adj or "") != a]))


def _restate(e: Event, rng: random.Random) -> str:
    style = rng.choice(("active", "passive"))
    return render(e, style, synonym=rng.random() < 0.5, front_day=rng.random() < 0.3)


def gen_mrpc(rng: random.Random) -> Example:
    """Paraphrase (MRPC): 1 equivalent. Both sentences of a pair overlap heavily; a non-paraphrase changes one
    content word."""
    e = _event(rng, place=0.7, day=0.5, adj=0.6)
    s1 = render(e, rng.choice(("active", "passive")))
    same = rng.random() < 0.6
    other = e if same else _different(e, rng)
    if not same and rng.random() < 0.5:
        other = _different(other, rng)
    s2 = _restate(other, rng)
    return s1, s2, int(same)


def gen_qqp(rng: random.Random) -> Example:
    """Duplicate questions (QQP): 1 duplicate. Duplicates ask the same thing in another voice or with synonyms;
    the others ask another question word or about another thing."""
    e = _event(rng, place=0.6, day=0.4, adj=0.5)
    wh = rng.choice(("where", "when", "who", "what"))
    q1 = question(e, wh, rng.choice(("active", "passive")))
    dup = rng.random() < 0.45
    if dup:
        q2 = question(e, wh, rng.choice(("active", "passive")))
        if q2 == q1:
            q2 = question(e.copy(adj=ADJ_SYNONYM.get(e.adj or "", e.adj)), wh, "passive")
    elif rng.random() < 0.5:
        q2 = question(e, rng.choice([w for w in ("where", "when", "who", "what") if w != wh]),
                      rng.choice(("active", "passive")))
    else:
        fields = {"what": ("agent", "verb"), "who": ("noun", "verb")}.get(wh, ("agent", "noun", "verb"))
        q2 = question(_different(e, rng, fields=fields), wh, rng.choice(("active", "passive")))
    return q1, q2, int(dup)


def gen_mnli(rng: random.Random) -> Example:
    """3-way entailment (MNLI): 0 entailment, 1 neutral, 2 contradiction."""
    e = _event(rng, place=0.6, day=0.4, adj=0.5)
    premise = render(e, rng.choice(("active", "passive")), front_day=rng.random() < 0.2)
    label = rng.randrange(3)
    style = rng.choice(("active", "passive"))
    if label == 0:  # drop information, restate, or "someone"
        r = rng.random()
        h = e.copy(adj=None if rng.random() < 0.5 else e.adj, place=None if rng.random() < 0.5 else e.place,
                   day=None if rng.random() < 0.6 else e.day)
        hyp = render(h, style, synonym=rng.random() < 0.4, agent="someone" if r < 0.25 else None)
    elif label == 1:  # add information the premise does not give
        options = [f for f in ("adj", "place", "day") if getattr(e, f) is None] or ["verb"]
        f = rng.choice(options)
        if f == "adj":
            h = e.copy(adj=rng.choice(ADJS))
        elif f == "place":
            h = e.copy(place=rng.choice(PLACES))
        elif f == "day":
            h = e.copy(day=rng.choice(DAYS))
        else:
            h = e.copy(verb=rng.choice([i for i in range(len(VERBS)) if i != e.verb]))
        hyp = render(h, style)
    else:  # negate, or change something the premise states
        options = ["neg"] + [f for f in ("place", "day") if getattr(e, f) is not None] + \
                  (["opp"] if e.adj in ADJ_OPPOSITE else [])
        f = rng.choice(options)
        if f == "neg":
            hyp = render_negated(e.copy(place=None if rng.random() < 0.5 else e.place))
        elif f == "opp":
            hyp = render(e.copy(adj=ADJ_OPPOSITE[e.adj or ""]), style)
        else:
            hyp = render(_different(e, rng, fields=(f,)), style)
    return premise, hyp, label


def gen_qnli(rng: random.Random) -> Example:
    """Question answering (QNLI): 0 entailment (the sentence answers the question), 1 not_entailment."""
    e = _event(rng, place=1.0, day=1.0, adj=0.5)
    wh = rng.choice(("where", "when", "who", "what"))
    q = question(e, wh, rng.choice(("active", "passive")))
    answers = rng.random() < 0.5
    if answers:
        s = e
    elif wh in ("where", "when") and rng.random() < 0.5:
        s = e.copy(place=None) if wh == "where" else e.copy(day=None)
    else:
        s = _different(e, rng, fields=("agent", "noun", "verb") if wh in ("where", "when") else
                       ("verb", "noun") if wh == "who" else ("agent", "verb"))
    sent = render(s, rng.choice(("active", "passive")), front_day=rng.random() < 0.3)
    return q, sent, 0 if answers else 1


def gen_rte(rng: random.Random) -> Example:
    """2-way entailment (RTE): 0 entailment, 1 not_entailment; longer premises of two events."""
    e1, e2 = _event(rng), _event(rng)
    premise = render(e1, "active")[:-2] + " and then " + render(e2, rng.choice(("active", "passive")))
    entailed = rng.random() < 0.5
    src = e1 if rng.random() < 0.5 else e2
    style = rng.choice(("active", "passive"))
    if entailed:
        hyp = render(src.copy(place=None if rng.random() < 0.5 else src.place, day=None), style,
                     synonym=rng.random() < 0.4)
    else:
        r = rng.random()
        if r < 0.4:  # mix the two events
            hyp = render(e1.copy(noun=e2.noun, plural=e2.plural, adj=e2.adj, place=None, day=None)
                         if e2.noun != e1.noun else _different(e1, rng, fields=("noun",)), style)
        elif r < 0.7:
            hyp = render_negated(src.copy(day=None))
        else:
            hyp = render(_different(src, rng, fields=("agent", "verb", "noun")).copy(day=None), style)
    return premise, hyp, 0 if entailed else 1


GENERATORS: dict[str, Callable[[random.Random], Example]] = {
    "cola": gen_cola, "sst2": gen_sst2, "mrpc": gen_mrpc, "qqp": gen_qqp, "mnli": gen_mnli, "qnli": gen_qnli,
    "rte": gen_rte,
}


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the zoo's seed and names (stable across processes and Python versions)."""
    text = "|".join([str(seed), "lm", *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def generate_split(task: str, n: int, seed: int, split: str, *, exclude: set[tuple[str, str | None]] | None = None
                   ) -> list[Example]:
    """``n`` examples of a task; dev examples never repeat a train pair (``exclude``)."""
    rng = random.Random(derive_seed(seed, "data", task, split))
    gen = GENERATORS[task]
    out: list[Example] = []
    seen: set[tuple[str, str | None]] = set(exclude or ())
    tries = 0
    while len(out) < n:
        a, b, y = gen(rng)
        tries += 1
        if (a, b) in seen and tries < 50 * n:
            continue
        seen.add((a, b))
        out.append((a, b, y))
    return out


# ---------------------------------------------------------------------------------------------------------------
# GLUE's own TSV layouts


_MNLI_TRAIN_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                      "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
_MNLI_DEV_HEADER = _MNLI_TRAIN_HEADER[:11] + ["label2", "label3", "label4", "label5", "gold_label"]


def _binary_parse(text: str) -> str:
    words = text.split()
    out = words[-1]
    for w in reversed(words[:-1]):
        out = f"( {w} {out} )"
    return out


def _parse(text: str) -> str:
    return "(ROOT (S " + " ".join(f"(X {w})" for w in text.split()) + "))"


def glue_tsv(task: str, split: str, examples: Sequence[Example], seed: int) -> bytes:
    """The bytes of ``<GLUE folder>/<train|dev|dev_matched>.tsv`` in GLUE's own layout (columns, header, label
    words, MRPC's UTF-8 BOM)."""
    rng = random.Random(derive_seed(seed, "ids", task, split))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar=None)
    if task == "cola":  # no header: source, label, original mark, sentence
        for a, _, y in examples:
            w.writerow(["lm01", y, "" if y else "*", a])
    elif task == "sst2":
        w.writerow(["sentence", "label"])
        for a, _, y in examples:
            w.writerow([a, y])
    elif task == "mrpc":
        w.writerow(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"])
        for a, b, y in examples:
            w.writerow([y, rng.randrange(10 ** 5, 10 ** 7), rng.randrange(10 ** 5, 10 ** 7), a, b])
    elif task == "qqp":
        w.writerow(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
        for i, (a, b, y) in enumerate(examples):
            w.writerow([i, 2 * i + 1, 2 * i + 2, a, b, y])
    elif task == "mnli":
        dev = split != "train"
        w.writerow(_MNLI_DEV_HEADER if dev else _MNLI_TRAIN_HEADER)
        for i, (a, b, y) in enumerate(examples):
            word = MNLI_LABELS[y]
            prompt = rng.randrange(10 ** 4, 10 ** 6)
            row = [i, prompt, f"{prompt}{'ecn'[y]}", "zoo", _binary_parse(a), _binary_parse(b or ""), _parse(a),
                   _parse(b or ""), a, b, word]
            w.writerow(row + ([word, word, word, word, word] if dev else [word]))
    elif task == "qnli":
        w.writerow(["index", "question", "sentence", "label"])
        for i, (a, b, y) in enumerate(examples):
            w.writerow([i, a, b, NLI2_LABELS[y]])
    elif task == "rte":
        w.writerow(["index", "sentence1", "sentence2", "label"])
        for i, (a, b, y) in enumerate(examples):
            w.writerow([i, a, b, NLI2_LABELS[y]])
    else:
        raise LMZooError(f"unknown task {task!r}")
    data = buf.getvalue().encode("utf-8")
    return b"\xef\xbb\xbf" + data if task == "mrpc" else data


def dev_file(task: str) -> str:
    return "dev_matched.tsv" if task == "mnli" else "dev.tsv"


# ---------------------------------------------------------------------------------------------------------------
# tokenizer, model, training


def train_tokenizer(texts: Sequence[str], vocab_size: int, model_max_length: int = 1024) -> Any:
    """A ByteLevel BPE trained here (``tokenizers``), wrapped as ``GPT2TokenizerFast`` with pad = eos."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                            show_progress=False)
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                            pad_token=EOS, model_max_length=model_max_length)
    return tok


def _config(cfg: LMZooConfig, tokenizer: Any, **extra: Any) -> Any:
    from transformers import GPT2Config

    eos = tokenizer.convert_tokens_to_ids(EOS)
    return GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                      n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=4 * cfg.n_embd, resid_pdrop=0.0,
                      embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0, bos_token_id=eos, eos_token_id=eos,
                      **extra)


def _lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * max(0.0, (total - step) / max(1, total - warm))


def _encode(tokenizer: Any, examples: Sequence[Example], max_length: int, what: str) -> list[list[int]]:
    """Token ids of ``tokenizer(text_a[, text_b])``; no example may need truncation (the evaluation does none)."""
    a = [x[0] for x in examples]
    if examples and examples[0][1] is not None:
        ids = tokenizer(a, [x[1] for x in examples])["input_ids"]
    else:
        ids = tokenizer(a)["input_ids"]
    longest = max(len(x) for x in ids)
    if longest > max_length:
        raise LMZooError(f"{what}: an example has {longest} tokens, more than n_positions = {max_length}")
    return ids


def _batch(ids: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, :len(x)] = 1
    return input_ids, mask


def pretrain(model: Any, tokenizer: Any, docs: Sequence[str], cfg: LMZooConfig, seed: int,
             progress: Progress) -> dict[str, float]:
    """Causal-LM pre-training on ``docs`` joined by EOS and cut into windows of ``n_positions`` tokens."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    stream: list[int] = []
    for ids in tokenizer(list(docs))["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    L = cfg.n_positions
    windows = torch.tensor(stream[: (len(stream) // L) * L], dtype=torch.long).view(-1, L)
    g = torch.Generator().manual_seed(derive_seed(seed, "pretrain-order") % (1 << 62))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.0, betas=(0.9, 0.98))
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(windows), generator=g)
    pos = 0
    for step in range(cfg.pretrain_steps):
        if pos + cfg.pretrain_batch > len(order):
            order, pos = torch.randperm(len(windows), generator=g), 0
        x = windows[order[pos:pos + cfg.pretrain_batch]]
        pos += cfg.pretrain_batch
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg.pretrain_steps, cfg.pretrain_lr, cfg.warmup_frac)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == cfg.pretrain_steps - 1:
            progress(step + 1, cfg.pretrain_steps, f"pre-training, loss {losses[-1]:.3f}")
    model.eval()
    tail = losses[-20:]
    return {"tokens": int(windows.numel()), "final_loss": sum(tail) / len(tail)}


def finetune(model: Any, ids: Sequence[Sequence[int]], labels: Sequence[int], cfg: LMZooConfig, steps: int,
             seed: int, pad: int, progress: Progress) -> list[float]:
    """Full fine-tune of a ``GPT2ForSequenceClassification`` (AdamW, no weight decay, warm-up then linear decay)."""
    g = torch.Generator().manual_seed(seed % (1 << 62))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=0.0)
    y_all = torch.tensor(labels, dtype=torch.long)
    model.train()
    losses = []
    order = torch.randperm(len(ids), generator=g)
    pos = 0
    for step in range(steps):
        if pos + cfg.finetune_batch > len(order):
            order, pos = torch.randperm(len(ids), generator=g), 0
        idx = order[pos:pos + cfg.finetune_batch].tolist()
        pos += cfg.finetune_batch
        x, mask = _batch([ids[i] for i in idx], pad)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, cfg.finetune_lr, cfg.warmup_frac)
        loss = model(input_ids=x, attention_mask=mask, labels=y_all[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == steps - 1:
            progress(step + 1, steps, f"loss {losses[-1]:.3f}")
    model.eval()
    return losses


@torch.no_grad()
def predict(model: Any, ids: Sequence[Sequence[int]], pad: int, batch_size: int = 128) -> torch.Tensor:
    """Predicted labels of a sequence classifier on right-padded batches."""
    out = []
    for i in range(0, len(ids), batch_size):
        x, mask = _batch(ids[i:i + batch_size], pad)
        out.append(model(input_ids=x, attention_mask=mask).logits.argmax(-1))
    return torch.cat(out)


def matthews_corrcoef(pred: Sequence[int], gold: Sequence[int]) -> float:
    """Binary Matthews correlation coefficient (0 when a marginal is empty)."""
    tp = sum(1 for p, g in zip(pred, gold) if p == 1 and g == 1)
    tn = sum(1 for p, g in zip(pred, gold) if p == 0 and g == 0)
    fp = sum(1 for p, g in zip(pred, gold) if p == 1 and g == 0)
    fn = sum(1 for p, g in zip(pred, gold) if p == 0 and g == 1)
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den else 0.0


def score(task: str, pred: Sequence[int], gold: Sequence[int]) -> float:
    """The task's GLUE metric: MCC for CoLA, accuracy otherwise."""
    pred, gold = [int(p) for p in pred], [int(g) for g in gold]
    if METRIC[task] == "mcc":
        return matthews_corrcoef(pred, gold)
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


# ---------------------------------------------------------------------------------------------------------------
# the build


def _pool_yaml() -> str:
    lines = [f"# {LM_ZOO_NAME}: the language demo zoo (spectral.zoo.lm), paths relative to this file",
             f"name: {LM_ZOO_NAME}", "base: gpt2/", "tasks:"]
    for t, folder, _, _ in LM_TASKS:
        lines.append(f"  - {{name: {t}, checkpoint: gpt2_{t}/, dataset: {folder}, data: glue/{folder}}}")
    return "\n".join(lines) + "\n"


def build_lm_zoo(root: str | Path | None = None, *, progress: Progress | None = None, seed: int = 0,
                 size: str = "full", force: bool = False) -> Path:
    """Build the language demo zoo into ``root`` (default :func:`lm_zoo_root`) and return it.

    Reuses a finished zoo of the same seed, size and version unless ``force``. The folder is built in a temporary
    sibling and renamed into place, so ``root`` is either absent, the previous zoo, or complete.
    """
    cfg = LMZooConfig.of_size(size)
    root = Path(root) if root is not None else lm_zoo_root(size=size)
    progress = progress or _noop
    if not force and is_lm_zoo_built(root):
        try:
            m = json.loads((root / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            m = {}
        if m.get("seed") == seed and m.get("config") == cfg.to_dict() and m.get("version") == LM_ZOO_VERSION:
            progress(1, 1, "lm zoo ready")
            return root
    threads = torch.get_num_threads()
    # one thread: bit-identical files whatever the core count ($SPECTRAL_ZOO_THREADS overrides, as for zoo-8)
    torch.set_num_threads(max(1, int(os.environ.get("SPECTRAL_ZOO_THREADS", "1"))))
    try:
        with atomic_folder(root) as tmp, torch.random.fork_rng(devices=[]), _quiet_transformers():
            _build(tmp, cfg, seed, progress)
    finally:
        torch.set_num_threads(threads)
    return root


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No transformers progress bars inside the build (the caller's ``progress`` reports)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _build(out: Path, cfg: LMZooConfig, seed: int, progress: Progress) -> None:
    from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel

    t_start, cpu_start = time.perf_counter(), time.process_time()
    # progress units: 1 per pre-training step, 1 per fine-tuning step, 5 per task for data/evaluation/saving
    total = 10 + cfg.pretrain_steps + sum(cfg.finetune_steps[t] + 5 for t in TASK_NAMES)
    done = 0

    def at(offset: int) -> Progress:
        return lambda i, n, text: progress(offset + i, total, text)

    progress(0, total, "generating text")
    data = {}
    for t in TASK_NAMES:
        train = generate_split(t, cfg.n_train[t], seed, "train")
        dev = generate_split(t, cfg.n_dev, seed, "dev", exclude={(a, b) for a, b, _ in train})
        data[t] = {"train": train, "dev": dev}
        folder = out / "glue" / GLUE_FOLDER[t]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.tsv").write_bytes(glue_tsv(t, "train", train, seed))
        (folder / dev_file(t)).write_bytes(glue_tsv(t, "dev", dev, seed))
    docs = pretrain_corpus(random.Random(derive_seed(seed, "corpus")), cfg.pretrain_sentences)
    progress(5, total, "training the tokenizer")
    tokenizer = train_tokenizer(docs, cfg.vocab_size, cfg.n_positions)
    pad = tokenizer.convert_tokens_to_ids(EOS)
    done = 10

    t0 = time.perf_counter()
    torch.manual_seed(derive_seed(seed, "init") % (1 << 62))
    lm = GPT2LMHeadModel(_config(cfg, tokenizer))
    stats = pretrain(lm, tokenizer, docs, cfg, seed, at(done))
    done += cfg.pretrain_steps
    base = lm.transformer
    base.save_pretrained(out / "gpt2", safe_serialization=True)
    tokenizer.save_pretrained(out / "gpt2")
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    manifest: dict[str, Any] = {
        "format": "spectral-lm-zoo", "name": LM_ZOO_NAME, "version": LM_ZOO_VERSION, "seed": seed,
        "config": cfg.to_dict(), "torch_version": torch.__version__,
        "base": {"folder": "gpt2/", "pretrain": stats, "seconds": round(time.perf_counter() - t0, 2)},
        "tasks": {},
    }
    del lm, base

    for t in TASK_NAMES:
        t0 = time.perf_counter()
        progress(done, total, f"{t}: fine-tuning")
        train_ids = _encode(tokenizer, data[t]["train"], cfg.n_positions, f"{t} train")
        dev_ids = _encode(tokenizer, data[t]["dev"], cfg.n_positions, f"{t} dev")
        y_train = [y for *_, y in data[t]["train"]]
        y_dev = [y for *_, y in data[t]["dev"]]
        labels = MNLI_LABELS if t == "mnli" else NLI2_LABELS if t in ("qnli", "rte") else ("0", "1") \
            if t != "cola" else ("unacceptable", "acceptable")
        if t == "sst2":
            labels = ("negative", "positive")
        elif t in ("mrpc",):
            labels = ("not_equivalent", "equivalent")
        elif t == "qqp":
            labels = ("not_duplicate", "duplicate")
        config = _config(cfg, tokenizer, num_labels=NUM_LABELS[t], pad_token_id=pad,
                         id2label=dict(enumerate(labels)), label2id={w: i for i, w in enumerate(labels)})
        torch.manual_seed(derive_seed(seed, "head", t) % (1 << 62))
        model = GPT2ForSequenceClassification(config)
        model.transformer.load_state_dict(base_state, strict=True)
        model.eval()
        head = {k: v.detach().clone() for k, v in model.score.state_dict().items()}
        losses = finetune(model, train_ids, y_train, cfg, cfg.finetune_steps[t], derive_seed(seed, "finetune", t),
                          pad, at(done))
        ft = score(t, predict(model, dev_ids, pad).tolist(), y_dev)
        trained_head = {k: v.detach().clone() for k, v in model.score.state_dict().items()}
        # base-with-head: the pre-trained body under the fine-tune's own head
        tuned_body = {k: v.detach().clone() for k, v in model.transformer.state_dict().items()}
        model.transformer.load_state_dict(base_state, strict=True)
        base_with_head = score(t, predict(model, dev_ids, pad).tolist(), y_dev)
        model.transformer.load_state_dict(tuned_body, strict=True)
        model.score.load_state_dict(trained_head)
        folder = out / f"gpt2_{t}"
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        del head
        counts = [sum(1 for y in y_dev if y == c) for c in range(NUM_LABELS[t])]
        manifest["tasks"][t] = {
            "checkpoint": f"gpt2_{t}/", "dataset": GLUE_FOLDER[t], "data": f"glue/{GLUE_FOLDER[t]}",
            "metric": METRIC[t], "num_labels": NUM_LABELS[t],
            "sizes": {"train": len(y_train), "dev": len(y_dev)}, "dev_label_counts": counts,
            "max_tokens": max(len(x) for x in (*train_ids, *dev_ids)),
            "dev": {"finetuned": ft, "base_with_head": base_with_head},
            "finetune_final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "steps": cfg.finetune_steps[t], "seconds": round(time.perf_counter() - t0, 2),
        }
        log.info("lm zoo %s: fine-tuned %.3f, base-with-head %.3f (%s, dev)", t, ft, base_with_head, METRIC[t])
        done += cfg.finetune_steps[t] + 5
        progress(done, total, f"{t}: done ({METRIC[t]} {ft:.3f})")
    manifest["seconds"] = round(time.perf_counter() - t_start, 2)
    manifest["cpu_seconds"] = round(time.process_time() - cpu_start, 2)
    (out / "pool.yaml").write_text(_pool_yaml())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    progress(total, total, "lm zoo ready")


def iter_task_folders(root: str | Path) -> Iterator[tuple[str, Path]]:
    for t in TASK_NAMES:
        yield t, Path(root) / f"gpt2_{t}"
