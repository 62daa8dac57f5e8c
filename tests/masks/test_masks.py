import pytest
import torch

from sparseshare.masks import (
    density,
    load_masks,
    ones_like,
    overlap_matrix,
    overlap_ratio,
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
