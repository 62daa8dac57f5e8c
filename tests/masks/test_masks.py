import math

import pytest
import torch

from sparseshare.masks import (
    chance_overlap,
    density,
    load_masks,
    max_overlap,
    normalised_overlap,
    ones_like,
    overlap_matrix,
    overlap_ratio,
    overlap_report,
    save_masks,
    union_count,
    validate_mask,
)


def _params():
    return {"a": torch.zeros(3, 4), "b": torch.zeros(5)}


def test_validate_rejects_unknown_name_wrong_shape_and_dtype():
    p = _params()
    with pytest.raises(KeyError, match="'c'"):
        validate_mask({"c": torch.ones(2, dtype=torch.bool)}, p)
    with pytest.raises(ValueError, match="shape"):
        validate_mask({"a": torch.ones(4, 3, dtype=torch.bool)}, p)
    with pytest.raises(TypeError, match="bool"):
        validate_mask({"a": torch.ones(3, 4)}, p)
    assert set(validate_mask(ones_like(p, ["a"]), p)) == {"a"}


def test_density_counts_kept_fraction():
    m = {"a": torch.tensor([True, False, False, True]), "b": torch.tensor([[True, True], [False, False]])}
    assert density(m) == pytest.approx(4 / 8)


def test_overlap_ratio_eq4_and_pairwise():
    m1 = {"w": torch.tensor([1, 1, 0, 0], dtype=torch.bool)}
    m2 = {"w": torch.tensor([0, 1, 1, 0], dtype=torch.bool)}
    m3 = {"w": torch.tensor([0, 1, 1, 1], dtype=torch.bool)}
    assert overlap_ratio([m1, m2]) == pytest.approx(1 / 3)
    assert overlap_ratio([m1, m2, m3]) == pytest.approx(1 / 4)
    assert overlap_ratio([m1, m1]) == 1.0
    pw = overlap_matrix({"x": m1, "y": m2, "z": m3})
    assert set(pw) == {"x|y", "x|z", "y|z"}
    assert pw["y|z"] == pytest.approx(2 / 3)
    assert union_count([m1, m2, m3]) == 4


def test_save_load_roundtrip_is_bitpacked(tmp_path):
    g = torch.Generator().manual_seed(0)
    masks = {
        t: {"enc.w": torch.rand(37, 11, generator=g) > 0.5, "enc.v": torch.rand(5, generator=g) > 0.3}
        for t in ("pos", "ner")
    }
    path = tmp_path / "m.safetensors"
    save_masks(masks, path)
    back = load_masks(path)
    assert list(back) == ["pos", "ner"]
    for t in masks:
        for n in masks[t]:
            assert back[t][n].dtype == torch.bool
            assert torch.equal(back[t][n], masks[t][n])
    # 1 bit per entry: (407 + 5) bits per task ~ 52 bytes + padding; far below 1 byte per entry.
    assert path.stat().st_size < 2 * (407 + 5) // 8 + 2000
    assert path.read_bytes()[:8] != b"\x80\x02"  # not a pickle


def _mask(bits: str) -> dict:
    return {"w": torch.tensor([b == "1" for b in bits]).view(2, -1)}


def test_chance_overlap_is_the_formula_and_normalised_overlap_spans_chance_to_nested():
    a, nested, apart = _mask("11110000"), _mask("11000000"), _mask("00001100")  # densities 0.5, 0.25, 0.25
    d1, d2 = 0.5, 0.25
    assert chance_overlap([d1, d2]) == pytest.approx(d1 * d2 / (d1 + d2 - d1 * d2))  # = 0.2
    assert chance_overlap([0.5, 0.5, 0.5]) == pytest.approx(0.125 / 0.875)
    assert max_overlap([d1, d2]) == 0.5
    assert overlap_ratio([a, nested]) == 0.5 and normalised_overlap(0.5, [d1, d2]) == pytest.approx(1.0)
    assert overlap_ratio([a, apart]) == 0.0 and normalised_overlap(0.0, [d1, d2]) == pytest.approx(-2 / 3)
    assert normalised_overlap(0.2, [d1, d2]) == pytest.approx(0.0)
    assert math.isnan(normalised_overlap(1.0, [1.0, 1.0]))  # all-ones masks: no room above chance
    report = overlap_report({"x": a, "y": nested, "z": apart})
    assert report["pairwise"] == {"x|y": 0.5, "x|z": 0.0, "y|z": 0.0}
    xy = report["baseline"]["pairwise"]["x|y"]
    assert xy == pytest.approx({"or": 0.5, "chance": 0.2, "max": 0.5, "normalised": 1.0})
    assert report["baseline"]["all"]["chance"] == pytest.approx(chance_overlap([0.5, 0.25, 0.25]))


def test_chance_overlap_matches_random_masks_of_those_densities():
    g = torch.Generator().manual_seed(0)
    masks = [{"w": torch.rand(400, 500, generator=g) < d} for d in (0.3, 0.6)]
    expected = chance_overlap([density(m) for m in masks])
    assert overlap_ratio(masks) == pytest.approx(expected, abs=0.005)
