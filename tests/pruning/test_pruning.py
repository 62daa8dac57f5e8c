import pytest
import torch

from sparseshare.pruning import (
    imp_densities,
    polynomial_sparsity,
    prunable_names,
    prune,
    prune_global,
    prune_layerwise,
)


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"l1": torch.randn(20, 30, generator=g), "l2": torch.randn(10, 7, generator=g) * 3}


def _ones(w):
    return {n: torch.ones_like(t, dtype=torch.bool) for n, t in w.items()}


def _kept(m):
    return sum(int(t.sum()) for t in m.values())


@pytest.mark.parametrize("fn", [prune_global, prune_layerwise])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_prune_invariants(fn, fraction):
    w = _weights()
    mask = _ones(w)
    before = {n: t.clone() for n, t in mask.items()}
    for _ in range(3):
        new = fn(w, mask, fraction)
        # input untouched
        assert all(torch.equal(mask[n], before[n]) for n in mask)
        # fraction of the *remaining* removed
        if fn is prune_global:
            assert _kept(mask) - _kept(new) == round(fraction * _kept(mask))
        else:
            for n in mask:
                assert int(mask[n].sum()) - int(new[n].sum()) == round(fraction * int(mask[n].sum()))
        # new within old
        assert all(not (new[n] & ~mask[n]).any() for n in mask)
        # kept magnitudes >= pruned ones (globally, or within each tensor)
        groups = [list(mask)] if fn is prune_global else [[n] for n in mask]
        for names in groups:
            kept = torch.cat([w[n].abs()[new[n]] for n in names])
            pruned = torch.cat([w[n].abs()[mask[n] & ~new[n]] for n in names])
            assert kept.min() >= pruned.max()
        mask = new
        before = {n: t.clone() for n, t in mask.items()}


def test_global_prunes_across_layers_by_magnitude():
    w = {"small": torch.full((4,), 0.1), "big": torch.full((4,), 10.0)}
    new = prune_global(w, _ones(w), 0.5)
    assert int(new["small"].sum()) == 0 and int(new["big"].sum()) == 4
    new = prune_layerwise(w, _ones(w), 0.5)
    assert int(new["small"].sum()) == 2 and int(new["big"].sum()) == 2


def test_prune_rejects_bad_arguments():
    w = _weights()
    with pytest.raises(ValueError, match="strategy"):
        prune(w, _ones(w), 0.1, strategy="random")
    with pytest.raises(ValueError, match="fraction"):
        prune(w, _ones(w), 1.5)


def test_prunable_names_default_excludes_embeddings_biases_heads_crf():
    names = {
        "encoder.word_embed.weight": torch.zeros(5, 3),
        "encoder.char_cnn.embed.weight": torch.zeros(5, 3),
        "encoder.char_cnn.conv.weight": torch.zeros(3, 3, 3),
        "encoder.lstm.weight_ih_l0": torch.zeros(8, 3),
        "encoder.lstm.bias_ih_l0": torch.zeros(8),
        "heads.pos.weight": torch.zeros(4, 2),
        "heads.ner.crf.transitions": torch.zeros(4, 4),
    }
    got = prunable_names(names)
    assert got == ["encoder.char_cnn.conv.weight", "encoder.lstm.weight_ih_l0"]
    assert prunable_names(names, include=["*"], exclude=[]) == [n for n, t in names.items() if t.dim() >= 2]


def test_imp_densities_geometric_until_minimal():
    d = imp_densities(0.1, 0.5)
    assert d[0] == 1.0 and d[1] == pytest.approx(0.9)
    assert d[-1] <= 0.5 < d[-2]
    assert len(d) == 8  # 0.9^7 = 0.478


def test_polynomial_schedule_start_middle_end():
    assert polynomial_sparsity(0, 0, 100, 0.1, 0.7) == pytest.approx(0.1)
    assert polynomial_sparsity(50, 0, 100, 0.1, 0.7) == pytest.approx(0.7 - 0.6 * 0.125)
    assert polynomial_sparsity(100, 0, 100, 0.1, 0.7) == pytest.approx(0.7)
    assert polynomial_sparsity(500, 0, 100, 0.1, 0.7) == pytest.approx(0.7)
