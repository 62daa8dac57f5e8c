"""An exported subnet's size beside its dense size counts the same things both ways: ``dense_bytes`` is the
file the same export would be with nothing masked, so the share never reads as more than dense (but for
the bit per entry a mask costs at density 1.0: 1/32 of a float32 matrix)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import sparseshare as ss
from sparseshare.cli import main

BITS = 1 / 32  # a bit per entry of a float32 matrix


class Towers(nn.Module):
    """Two tasks on a shared bottom; ``norm`` adds BatchNorm running statistics, ``table`` a big buffer
    (``table`` x ``table`` float32) that the forward reads."""

    tasks = ["a", "b"]

    def __init__(self, width: int = 256, norm: bool = False, table: int = 0):
        super().__init__()
        torch.manual_seed(0)
        self.bottom = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width))
        self.norm = nn.BatchNorm1d(width) if norm else nn.Identity()
        self.heads = nn.ModuleDict({t: nn.Linear(width, 1) for t in self.tasks})
        if table:
            self.register_buffer("table", torch.randn(table, table))

    def forward(self, batch, task):
        h = self.norm(self.bottom(batch))
        if hasattr(self, "table"):
            h = h + self.table.mean()
        return self.heads[task](h).squeeze(-1)

    def task_loss(self, output, batch, task):
        return output.pow(2).mean()

    def task_predict(self, output, batch, task):
        return output

    def task_parameter_names(self, task):
        return [
            n
            for n, _ in self.named_parameters()
            if not n.startswith("heads.") or n.startswith(f"heads.{task}.")
        ]


def _masks(model: nn.Module, density: float) -> dict:
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(1)
    names = ss.prunable_names(model)
    assert names == ["bottom.0.weight", "bottom.2.weight"]
    return {t: {n: torch.rand(params[n].shape, generator=g) < density for n in names} for t in model.tasks}


def _ratio(sizes: dict) -> float:
    return sizes["bytes"] / sizes["dense_bytes"]


def _check(model: nn.Module, module: nn.Module, tmp_path: Path) -> dict:
    """Export ``module`` (``model`` under a mechanism) for task a: the sizes, checked against the file and
    against the dense file an export of the bare ``model`` writes; its predictions against the module's."""
    sizes = ss.export_subnet(module, "a", tmp_path / "a.safetensors")
    assert sizes["bytes"] == (tmp_path / "a.safetensors").stat().st_size
    bare = ss.export_subnet(model, "a", tmp_path / "dense.safetensors")
    assert bare["bytes"] == bare["dense_bytes"] and bare["density"] == 1.0
    assert sizes["dense_bytes"] == bare["bytes"]  # the dense figure is that file's size, to the byte
    assert sizes["dense_parameter_bytes"] == bare["parameter_bytes"] == bare["dense_parameter_bytes"]
    sub = ss.load_subnet(tmp_path / "a.safetensors", build=lambda: copy.deepcopy(model))
    module.eval()
    x = torch.randn(8, 16)
    assert torch.equal(sub.predict(x), module.predict(x, "a"))
    return sizes


@pytest.mark.parametrize("wrap", [lambda m: m, ss.HardSharing], ids=["network", "hard"])
def test_without_masks_the_file_is_its_own_dense_size(tmp_path, wrap):
    model = Towers()
    sizes = ss.export_subnet(wrap(model), "a", tmp_path / "a.safetensors")
    assert sizes["bytes"] == sizes["dense_bytes"] == (tmp_path / "a.safetensors").stat().st_size
    assert sizes["parameter_bytes"] == sizes["dense_parameter_bytes"]
    assert sizes["masked"] == 0 and sizes["density"] == 1.0


def test_a_density_one_subnet_costs_its_bits_and_no_more(tmp_path):
    model = Towers()
    sizes = _check(model, ss.SparseSharing(model), tmp_path)  # all-ones masks on the bottom's matrices
    assert sizes["density"] == 1.0 and sizes["kept"] == sizes["masked"] == 16 * 256 + 256 * 256
    assert 1 < _ratio(sizes) <= 1 + BITS + 1e-3  # the bits, and a few header bytes per masked matrix
    payload = sizes["parameter_bytes"] - sizes["dense_parameter_bytes"]
    assert payload == sizes["masked"] // 8  # the bits exactly: each matrix's bits fill whole bytes here


def test_a_half_density_subnet_is_smaller_than_dense(tmp_path):
    model = Towers()
    sizes = _check(model, ss.SparseSharing(model, _masks(model, 0.5)), tmp_path)
    assert 0.45 < sizes["density"] < 0.55
    assert _ratio(sizes) < 1 and sizes["parameter_bytes"] < sizes["dense_parameter_bytes"]
    # kept float32 values and a bit per masked entry: the share is about density + 1/32 of the masked part
    masked_share = sizes["masked"] * 4 / sizes["dense_bytes"]
    assert _ratio(sizes) == pytest.approx(1 - masked_share * (1 - sizes["density"] - BITS), abs=2e-3)


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_big_buffers_count_on_both_sides(tmp_path, density):
    """BatchNorm's running statistics and a 512 x 512 buffer (1 MiB, far more than the parameters): in
    the file and in the dense figure alike."""
    model = Towers(norm=True, table=512)
    model.train()
    model(torch.randn(32, 16), "a")  # running statistics away from their initial values
    for module in (model, ss.HardSharing(model)):
        sizes = ss.export_subnet(module, "a", tmp_path / "hard.safetensors")
        assert sizes["bytes"] == sizes["dense_bytes"]
    masks = _masks(model, density) if density < 1 else None
    sizes = _check(model, ss.SparseSharing(model, masks), tmp_path)
    assert sizes["dense_bytes"] > 512 * 512 * 4 > sizes["dense_parameter_bytes"]
    assert _ratio(sizes) <= 1 + BITS * sizes["masked"] * 4 / sizes["dense_bytes"] + 1e-3
    if density < 1:
        assert _ratio(sizes) < 1
    sub = ss.load_subnet(tmp_path / "a.safetensors", build=lambda: Towers(norm=True, table=512))
    assert torch.equal(sub.network.table, model.table)
    assert torch.equal(sub.network.norm.running_mean, model.norm.running_mean)


TINY = [
    "--set", "data.limits={train: 30, dev: 10, test: 10}", "--set", "systems=[hard, sparse]",
    "--set", "train.epochs=2", "--set", "search.alpha=0.5", "--set", "search.min_density=0.3",
]  # fmt: skip
_LINE = re.compile(
    r"^(?P<out>.+): (?P<kb>[\d,.]+) KB \(dense (?P<dense>[\d,.]+) KB, (?P<share>\d+)%\)(?P<rest>.*)$"
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["run", "smoke", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.integration
@pytest.mark.parametrize("system", ["hard", "sparse"])
def test_the_cli_prints_the_file_beside_the_same_file_dense(tiny_run, tmp_path, capsys, system):
    from sparseshare.experiments.results.predict import load_system, system_recipe
    from sparseshare.experiments.systems.context import read_preprocess

    for task in ("pos", "ner"):
        out = tmp_path / f"{system}-{task}.safetensors"
        assert main(["export", str(tiny_run), "--task", task, "--system", system, "-o", str(out)]) == 0
        line = _LINE.match(capsys.readouterr().out.strip())
        assert line and line["out"] == str(out)
        assert line["kb"] == f"{out.stat().st_size / 1024:,.1f}"
        # dense: what exporting the bare network, with the same recipe, preprocessing and notes, writes
        module = load_system(tiny_run, system, task)
        network = getattr(module, "model", module)
        recipe = system_recipe(tiny_run, system, task)[1]
        bare = ss.export_subnet(
            network,
            task,
            tmp_path / "bare.safetensors",
            recipe=recipe
            if network is module
            else {"network": recipe["network"], "kwargs": recipe["kwargs"]},
            preprocess=read_preprocess(tiny_run),
            meta={"run": str(tiny_run), "system": system},
        )
        assert line["dense"] == f"{bare['bytes'] / 1024:,.1f}"
        share = out.stat().st_size / bare["bytes"]
        assert int(line["share"]) == round(100 * share)
        if system == "hard":
            assert share == 1 and not line["rest"]
        else:
            assert share < 1 and "masked weights kept" in line["rest"]


def test_a_loaded_subnet_is_a_mechanism_that_scores_but_refuses_a_step(tmp_path):
    """``ss.evaluate`` takes a loaded subnet (it fits the mechanism contract: its loss is the network's),
    and an optimizer step, which would move its pruned weights back from zero, is one line refused."""
    from sparseshare.contracts import is_mechanism

    model = Towers()
    mech = ss.SparseSharing(model, _masks(model, 0.5))
    ss.export_subnet(mech, "a", tmp_path / "a.safetensors")
    sub = ss.load_subnet(tmp_path / "a.safetensors", build=lambda: copy.deepcopy(model))
    assert is_mechanism(sub)
    ss.check_mechanism(sub)
    mech.eval()
    x = torch.randn(8, 16)
    assert torch.equal(sub.loss(x, "a"), mech.loss(x, "a"))
    with pytest.raises(ss.ContractError, match="serves task 'a', not 'b'"):
        sub.loss(x, "b")
    with pytest.raises(ss.ContractError, match="for prediction: an optimizer step would move its pruned"):
        sub.step(torch.optim.SGD(sub.parameters(), lr=0.1), "a")
