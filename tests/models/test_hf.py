"""HFMultiTask: sparse sharing over a (tiny, random) BERT, end to end, and export of a subnet."""

import sys

import pytest
import torch

import sparseshare as ss
from sparseshare.errors import ConfigError
from sparseshare.models.hf import HF_EXCLUDE, HF_INCLUDE, HFMultiTask, hf_prunable, require_transformers

transformers = pytest.importorskip("transformers")


def tiny_bert():
    cfg = transformers.BertConfig(
        vocab_size=24,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(cfg)


def make_data(task, n, g):
    ids = torch.randint(1, 24, (n, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[:, 6:] = 0
    labels = (ids % 3).masked_fill(mask == 0, -100) if task == "tag" else (ids[:, 1] > 12).long()
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(n)]


def collate(rows):
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def test_prunable_names_are_attention_and_ffn_weights_only():
    model = HFMultiTask(tiny_bert(), {"tag": ("token", 3), "cls": ("sequence", 2)})
    names = hf_prunable(model)
    assert sorted(n.split("layer.0.")[1] for n in names) == sorted(
        [
            "attention.self.query.weight",
            "attention.self.key.weight",
            "attention.self.value.weight",
            "attention.output.dense.weight",
            "intermediate.dense.weight",
            "output.dense.weight",
        ]
    )


def test_pipeline_end_to_end_and_export(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    tasks = [
        ss.Task.from_loaders(
            t,
            train=make_data(t, 64, g),
            dev=make_data(t, 16, g),
            test=make_data(t, 16, g),
            collate_fn=collate,
            metric="accuracy",
        )
        for t in ("tag", "cls")
    ]
    model = HFMultiTask(tiny_bert(), {"tag": ("token", 3), "cls": ("sequence", 2)})
    settings = ss.TrainSettings(epochs=1, patience=0, batch_size=16, optimizer="adam", lr=3e-3, lr_decay=0.0)
    state = ss.warmup(model, tasks, settings, epochs=1, seed=0)
    search = ss.SearchSettings(
        epochs_per_level=1,
        patience=0,
        alpha=0.5,
        min_density=0.4,
        include=list(HF_INCLUDE),
        exclude=list(HF_EXCLUDE),
    )
    found = ss.search_masks(model, tasks, state, search=search, settings=settings, seed=0)
    masks = ss.select_subnets(found)
    for t in ("tag", "cls"):
        assert sorted(masks[t]) == sorted(hf_prunable(model))
    model.load_state_dict(state)
    sparse = ss.SparseSharing(model, masks)
    ss.train_jointly(sparse, tasks, settings, seed=0)
    scores = ss.evaluate(sparse, tasks, "test")
    assert set(scores) == {"tag", "cls"}
    path = tmp_path / "cls.safetensors"
    ss.export_subnet(sparse, "cls", path)
    sub = ss.load_subnet(
        path, build=lambda: HFMultiTask(tiny_bert(), {"tag": ("token", 3), "cls": ("sequence", 2)})
    )
    batch = collate(make_data("cls", 8, g))
    sparse.eval()
    with torch.no_grad():
        assert torch.equal(sub.predict(batch), sparse.predict(batch, "cls"))
        assert not any(
            torch.isnan(p).any()
            for n, p in sub.network.named_parameters()
            if "heads.tag" not in n and "pooler" not in n
        )


def test_bad_heads_and_missing_transformers(monkeypatch):
    with pytest.raises(ConfigError, match="heads\\['x'\\]"):
        HFMultiTask(tiny_bert(), {"x": ("span", 2)})
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"pip install sparseshare\[hf\]"):
        require_transformers()
