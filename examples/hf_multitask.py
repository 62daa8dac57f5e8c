"""Sparse sharing over a Hugging Face transformer: one BERT encoder, four tasks on CoNLL-2003 sentences.

What it shows: the whole sparse-sharing pipeline (Sun et al., AAAI 2020, Algorithm 1) over a
``transformers`` encoder, with nothing from sparseshare but its public API and ``HFMultiTask``::

    warmup -> search_masks (IMP per task, attention and FFN matrices only) -> select_subnets
      -> SparseSharing -> train_jointly -> evaluate (test, once) -> save / export -> reload, same predictions

The tasks, all over the same CoNLL-2003 English sentences (each task its own DataLoaders):

- ``pos``: a part-of-speech tag per word (token head; token accuracy);
- ``ner``: a named-entity tag per word, BIOES (token head; strict span F1);
- ``has_person``: does the sentence mention a person (sequence head on the first token; accuracy);
- ``entity_share``: the fraction of its words inside an entity (regression head; MSE).

Offline, the encoder is a tiny BERT with random weights (``transformers.BertConfig``) and the tokenizer
a word-level vocabulary built from the training split, so every word is one token and the token heads
align 1:1 with words. With a pretrained model the two lines that change are::

    encoder = transformers.AutoModel.from_pretrained("bert-base-cased")
    tokenizer = transformers.AutoTokenizer.from_pretrained("bert-base-cased")  # see align_labels()

and each word's tag goes on its first sub-word (``word_ids()``), -100 on the others and on [CLS]/[SEP].

Two ways to keep a task's subnet, both written and reloaded here:

- the task's **mask over the shared weights** (``ss.save_masks``: 1 bit per prunable weight), reloaded
  against the base network's weights saved once for all tasks (``base.safetensors``): the way to serve
  many tasks from one copy of the encoder;
- a **standalone subnet** (``ss.export_subnet``: the task's kept weights plus a bit per entry for the
  masked matrices, embeddings, LayerNorms and its head whole), reloaded by ``ss.load_subnet``.

Run: ``python examples/hf_multitask.py [--quick] [--out DIR]`` (``--quick``: under a minute on 2 cores).
Data: CoNLL-2003 from the cache (``~/.cache/sparseshare/conll2003``; fetched if absent, see the README's
*Data*) or ``--data-dir`` (train.txt, valid.txt, test.txt).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file

import sparseshare as ss
from sparseshare.data.readers import conll2003_tasks
from sparseshare.data.sources import get_source, resolve
from sparseshare.metrics import span_f1
from sparseshare.models.hf import HF_EXCLUDE, HF_INCLUDE, IGNORE, HFMultiTask

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
HEADS_KIND = {"pos": "token", "ner": "token", "has_person": "sequence", "entity_share": "regression"}
MAX_WORDS = 127  # + [CLS] = max_position_embeddings (CoNLL-2003's longest sentence has 124 words)


def word_vocab(sentences: list[list[str]], min_count: int) -> dict[str, int]:
    """A word-level tokenizer: words seen ``min_count`` times in training get an id, the rest [UNK]."""
    counts = Counter(w for s in sentences for w in s)
    words = sorted(w for w, c in counts.items() if c >= min_count)
    return {w: i for i, w in enumerate([PAD, UNK, CLS, *words])}


def encode(words: list[str], vocab: dict[str, int]) -> list[int]:
    """[CLS] and one id per word: ``tokenizer(words, is_split_into_words=True)``, sub-words aside."""
    return [vocab[CLS]] + [vocab.get(w, vocab[UNK]) for w in words[:MAX_WORDS]]


def align_labels(word_tags: list[int], word_ids: list[int | None]) -> list[int]:
    """Word tags on sub-word tokens: a word's tag on its first token, -100 elsewhere ([CLS], [SEP], the
    other sub-words). ``word_ids`` is a fast tokenizer's ``encoding.word_ids()``; here every word is one
    token after [CLS], ``[None, 0, 1, ...]``."""
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORE if w is None or w == previous else word_tags[w])
        previous = w
    return out


def make_rows(words: list[str], tags: dict[str, list[str]], vocab, tag_ids) -> dict[str, dict]:
    """One example per task for a sentence: ``input_ids`` and the task's ``labels``."""
    ids = encode(words, vocab)
    word_ids = [None, *range(len(ids) - 1)]
    entity = [t != "O" for t in tags["ner"][:MAX_WORDS]]
    labels = {
        "pos": align_labels([tag_ids["pos"][t] for t in tags["pos"]], word_ids),
        "ner": align_labels([tag_ids["ner"][t] for t in tags["ner"]], word_ids),
        "has_person": int(any(t.endswith("-PER") for t in tags["ner"])),
        "entity_share": sum(entity) / len(entity),
    }
    return {t: {"input_ids": ids, "labels": labels[t]} for t in HEADS_KIND}


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Pad to the longest sentence: ids with 0 ([PAD]), token labels with -100; an attention mask."""
    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        mask[i, : len(r["input_ids"])] = 1
    first = rows[0]["labels"]
    if isinstance(first, list):  # a tag per token
        labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
    else:
        labels = torch.tensor(
            [r["labels"] for r in rows], dtype=torch.float if isinstance(first, float) else None
        )
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def span_metric(tags: list[str]):
    """Strict BIOES span F1 over joined token predictions: every sentence starts with [CLS] (label -100),
    so the runs of labelled tokens between -100s are the sentences, even once batches are flattened."""

    def f1(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        gold, guess, g, p = [], [], [], []
        for y, q in zip(target.reshape(-1).tolist(), pred.reshape(-1).tolist()):
            if y == IGNORE:
                if g:
                    gold, guess, g, p = [*gold, g], [*guess, p], [], []
                continue
            g.append(tags[y])
            p.append(tags[q])
        if g:
            gold, guess = [*gold, g], [*guess, p]
        return span_f1(gold, guess, "bioes")

    return f1


def build_tasks(root: Path, sizes: dict[str, int], batch_size: int, min_count: int, seed: int):
    """(tasks, vocabulary, tag ids, trivial baselines on test) from ``sizes`` sentences of each split of
    CoNLL-2003, drawn at random with ``seed`` (the files' first sentences are mostly sports results)."""
    corpus = conll2003_tasks(root, ("pos", "ner"))
    rng = random.Random(seed)
    for split, n in sizes.items():
        keep = sorted(rng.sample(range(len(corpus["pos"][split])), n))
        for t in corpus:
            corpus[t][split] = [corpus[t][split][i] for i in keep]
    vocab = word_vocab([w for w, _ in corpus["pos"]["train"]], min_count)
    tag_ids = {
        t: {
            tag: i for i, tag in enumerate(sorted({x for s in corpus[t].values() for _, ts in s for x in ts}))
        }
        for t in ("pos", "ner")
    }
    rows = {t: {} for t in HEADS_KIND}
    for split in sizes:
        per_sentence = [
            make_rows(w, {"pos": pos, "ner": ner}, vocab, tag_ids)
            for (w, pos), (_, ner) in zip(corpus["pos"][split], corpus["ner"][split])
        ]
        for t in HEADS_KIND:
            rows[t][split] = [r[t] for r in per_sentence]
    ner_tags = sorted(tag_ids["ner"], key=tag_ids["ner"].get)

    def loaders(task: str) -> dict:
        return {
            split: torch.utils.data.DataLoader(
                rows[task][split], batch_size=batch_size, shuffle=split == "train", collate_fn=collate
            )
            for split in sizes
        }

    tasks = [
        ss.Task.from_loaders("pos", **loaders("pos"), metric="accuracy"),
        ss.Task.from_loaders("ner", **loaders("ner"), metric=span_metric(ner_tags), metric_name="f1"),
        ss.Task.from_loaders("has_person", **loaders("has_person"), metric="accuracy"),
        ss.Task.from_loaders("entity_share", **loaders("entity_share"), metric="mse"),
    ]
    pos_test = Counter(x for r in rows["pos"]["test"] for x in r["labels"] if x != IGNORE)
    person = [r["labels"] for r in rows["has_person"]["test"]]
    share_train = [r["labels"] for r in rows["entity_share"]["train"]]
    mean_share = sum(share_train) / len(share_train)
    baseline = {  # what a model that ignores its input scores on test
        "pos": max(pos_test.values()) / sum(pos_test.values()),  # the commonest tag everywhere
        "ner": 0.0,  # "O" everywhere: no span
        "has_person": max(sum(person), len(person) - sum(person)) / len(person),  # the commoner answer
        "entity_share": sum((r["labels"] - mean_share) ** 2 for r in rows["entity_share"]["test"])
        / len(rows["entity_share"]["test"]),  # the training mean
    }
    return tasks, vocab, tag_ids, baseline


def tiny_bert(vocab_size: int, hidden: int = 32, layers: int = 2, heads: int = 2) -> transformers.BertModel:
    """A BERT with random weights (no download); ``AutoModel.from_pretrained`` is the real thing."""
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=MAX_WORDS + 1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(config, add_pooling_layer=False)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small slice and few epochs (< 1 min)")
    parser.add_argument("--train", type=int, default=3000, help="training sentences (--quick: 600)")
    parser.add_argument("--eval", type=int, default=500, help="dev and test sentences (--quick: 200)")
    parser.add_argument("--epochs", type=int, default=None, help="joint-training epochs (8; --quick: 3)")
    parser.add_argument("--warmup-epochs", type=int, default=None, help="(4; --quick: 2)")
    parser.add_argument("--epochs-per-level", type=int, default=None, help="(2; --quick: 1)")
    parser.add_argument("--alpha", type=float, default=0.3, help="fraction pruned per IMP level")
    parser.add_argument("--min-density", type=float, default=0.3)
    parser.add_argument("--data-dir", default=None, help="CoNLL-2003 folder (default: the cache)")
    parser.add_argument("--out", default=None, help="where the subnets go (default: a temporary folder)")
    parser.add_argument("--device", default=None, help="e.g. cuda or auto (default: the CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quick = args.quick
    epochs = args.epochs or (3 if quick else 8)
    warmup_epochs = args.warmup_epochs if args.warmup_epochs is not None else (2 if quick else 4)
    per_level = args.epochs_per_level or (1 if quick else 2)
    n_train = 600 if quick and args.train == 3000 else args.train
    n_eval = 200 if quick and args.eval == 500 else args.eval
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.time()

    root = resolve(get_source("conll2003"), args.data_dir)
    sizes = {"train": n_train, "dev": n_eval, "test": n_eval}
    tasks, vocab, tag_ids, baseline = build_tasks(root, sizes, batch_size=32, min_count=2, seed=args.seed)
    heads = {
        "pos": ("token", len(tag_ids["pos"])),
        "ner": ("token", len(tag_ids["ner"])),
        "has_person": ("sequence", 2),
        "entity_share": ("regression", 1),
    }

    def build() -> HFMultiTask:
        return HFMultiTask(tiny_bert(len(vocab)), heads)

    torch.manual_seed(args.seed)
    model = build()
    settings = ss.TrainSettings(
        epochs=epochs, patience=0, batch_size=32, optimizer="adam", lr=2e-3, lr_decay=0.0, clip=1.0
    )
    history: list[dict] = []

    # 1. multi-task warmup: θ^(w), the rewind point of every IMP level
    state = ss.warmup(
        model,
        tasks,
        settings,
        epochs=warmup_epochs,
        seed=args.seed,
        device=args.device,
        log=history.append,
        progress=False,
    )
    # 2. IMP per task over the attention and FFN matrices (embeddings, LayerNorms, biases, heads stay dense)
    search = ss.SearchSettings(
        epochs_per_level=per_level,
        patience=0,
        alpha=args.alpha,
        min_density=args.min_density,
        include=list(HF_INCLUDE),
        exclude=list(HF_EXCLUDE),
    )
    found = ss.search_masks(
        model,
        tasks,
        state,
        search=search,
        settings=settings,
        seed=args.seed,
        device=args.device,
        progress=False,
    )
    # 3. each task's subnet: its best level on dev, ties to the sparsest
    masks = ss.select_subnets(found)
    params = dict(model.named_parameters())
    pruned = sorted(masks["pos"])
    n_pruned = sum(params[n].numel() for n in pruned)
    n_total = sum(p.numel() for p in model.parameters())
    print(f"IMP masks {len(pruned)} matrices ({n_pruned:,} of {n_total:,} parameters): hf_prunable's")
    for name, res in found.items():
        levels = ", ".join(f"{lv.density:.2f}:{lv.dev:.3f}" for lv in res.levels)
        print(f"  {name:12s} levels (density:dev) {levels}; selected {res.levels[res.select()].density:.3f}")

    # 4. the subnets trained jointly from θ^(w), the best dev epoch kept; test scored once
    model.load_state_dict(state)
    sparse = ss.SparseSharing(model, masks)
    result = ss.train_jointly(
        sparse, tasks, settings, seed=args.seed, device=args.device, log=history.append, progress=False
    )
    test = ss.evaluate(sparse, tasks, "test", device=args.device)
    sparse.cpu().eval()
    density = {t: ss.density(m) for t, m in masks.items()}

    # 5. keep and reload every subnet, two ways; predictions must be those of the trained mechanism
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="hf_multitask_"))
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {n: t.contiguous() for n, t in sparse.model.state_dict().items()}, str(out / "base.safetensors")
    )
    exports, equal = {}, {}
    base = build()  # a fresh network (random weights), given the shared base weights
    base.load_state_dict(load_file(str(out / "base.safetensors")))
    for t in sparse.tasks:
        ss.save_masks({t: masks[t]}, out / f"{t}.masks.safetensors")  # the mask over the base weights
        exports[t] = ss.export_subnet(sparse, t, out / f"{t}.subnet.safetensors")  # a standalone file
    served = ss.SparseSharing(
        base, {t: ss.load_masks(out / f"{t}.masks.safetensors")[t] for t in sparse.tasks}
    )
    served.eval()
    with torch.no_grad():
        for task in tasks:
            sub = ss.load_subnet(out / f"{task.name}.subnet.safetensors", build=build)
            same = []
            for batch in task.data.batches("test", 50):
                want = sparse.predict(batch, task.name)
                same += [
                    torch.equal(want, served.predict(batch, task.name)),
                    torch.equal(want, sub.predict(batch)),
                ]
            equal[task.name] = all(same)

    base_bytes = (out / "base.safetensors").stat().st_size
    print(
        f"\n{'task':12s} {'test':>7s} {'baseline':>8s} {'density':>8s} "
        f"{'mask file':>10s} {'subnet file':>12s}"
    )
    for task in tasks:
        score = test[task.name][task.key]
        mask_bytes = (out / f"{task.name}.masks.safetensors").stat().st_size
        print(
            f"{task.name:12s} {score:7.3f} {baseline[task.name]:8.3f} {density[task.name]:8.3f} "
            f"{mask_bytes:10,d} {exports[task.name]['bytes']:12,d}"
        )
    print("metrics: pos accuracy, ner span F1, has_person accuracy, entity_share MSE (lower is better)")
    print(
        f"base weights, once for all tasks: {base_bytes:,} bytes; subnet files dense would be "
        f"{exports['pos']['dense_bytes']:,}"
    )
    print(f"reloaded subnets predict as trained: {equal}")
    print(f"Overlap Ratio of the four masks: {ss.overlap_ratio(list(masks.values())):.3f}")
    print(f"done in {time.time() - began:.1f} s; files in {out}")
    losses = [r["loss"] for r in history if "loss" in r]
    return {
        "test": {t.name: test[t.name][t.key] for t in tasks},
        "baseline": baseline,
        "density": density,
        "masks": masks,
        "found": found,
        "pruned": pruned,
        "model": sparse.model,
        "exports": exports,
        "equal": equal,
        "losses": losses,
        "result": result,
        "out": out,
        "tasks": tasks,
        "build": build,
    }


if __name__ == "__main__":
    main()
