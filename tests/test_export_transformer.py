"""Exact stays exact (issue 21, item 4): a TransformerEncoder's subnet, exported and loaded, predicts what
the mechanism predicts, bit for bit, with autograd on or off (torch's fast attention path in evaluation
is taken by both or by neither)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import sparseshare as ss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import transformer_tagging as tt  # noqa: E402


class Scores(tt.Tagger):
    """The example's tagger, predicting its raw scores (so that a 1e-7 difference shows)."""

    def task_predict(self, output, batch, task):
        return output


def test_a_transformers_loaded_subnet_predicts_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    model = Scores(tt.NUM_TAGS)
    params = dict(model.named_parameters())
    masks = {t: {n: torch.rand_like(params[n]) > 0.5 for n in ss.prunable_names(model)} for t in model.tasks}
    sparse = ss.SparseSharing(model, masks)
    ds = tt.make_split("mod5", 16, np.random.default_rng(0))
    batch = tt.collate([ds[i] for i in range(16)])
    ss.export_subnet(sparse, "mod5", tmp_path / "mod5.safetensors")
    sub = ss.load_subnet(tmp_path / "mod5.safetensors", build=lambda: Scores(tt.NUM_TAGS))
    sparse.eval()
    assert torch.is_grad_enabled()
    assert torch.equal(sparse.predict(batch, "mod5"), sub.predict(batch))
    with torch.no_grad():
        assert torch.equal(sparse.predict(batch, "mod5"), sub.predict(batch))
