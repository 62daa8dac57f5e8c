"""Values that cannot be right (issue 22, item 6): non-finite and absurd numbers are refused by the schema
before any data is read, and a network too large for the machine before it is allocated, each in one
line naming the key, exit 2."""

from __future__ import annotations

import math

import pytest
import torch

import sparseshare as ss
from sparseshare.errors import ConfigError
from sparseshare.experiments.systems import context
from sparseshare.sharing.registry import build_recipe
from tests.experiments.test_hostile import _run, _tree


@pytest.fixture
def no_data(monkeypatch):
    """Reading any data fails the test: the values below must be refused before it."""

    def read(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(context, "read_sequence_tasks", read)
    monkeypatch.setattr(context, "load_tabular", read)


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["train.lr=.inf"], "'train.lr' must be a finite number, got inf"),
        (["train.lr=.nan"], "'train.lr' must be a finite number, got nan"),
        (["pbfs.power=-.inf"], "'pbfs.power' must be a finite number, got -inf"),
        (["train.loss_weights={pos: .inf}"], "'train.loss_weights.pos' must be a finite number, got inf"),
        (["train.epochs=100000000000000000000"], "'train.epochs' must fit in 64 bits, got a 67-bit number"),
        (["train.epochs=2000000"], "'train.epochs' must be <= 1_000_000, got 2_000_000"),
        (["search.warmup_epochs=10000000"], "'search.warmup_epochs' must be <= 1_000_000, got 10_000_000"),
        (["train.batch_size=100000000"], "'train.batch_size' must be <= 16_777_216, got 100_000_000"),
        (["model.hidden=1000000000"], "'model.hidden' must be <= 1_048_576, got 1_000_000_000"),
        (["model.layers=5000"], "'model.layers' must be <= 1_024, got 5_000"),
        (
            ["tabular.bottom=[8, 3000000]"],
            "'tabular.bottom': layer sizes must be <= 1_048_576, got [8, 3000000]",
        ),
    ],
)
def test_non_finite_and_absurd_values_fail_before_any_data_is_read(tmp_path, capsys, no_data, sets, needle):
    out = tmp_path / "run"
    rc, err = _run(capsys, ["run", "smoke", "--out", out, *(a for s in sets for a in ("--set", s))])
    assert rc == 2 and any(needle in line for line in err), err
    assert _tree(tmp_path) == set()  # nothing written anywhere


def test_a_nan_is_one_line_not_also_a_range_line(tmp_path, capsys, no_data):
    rc, err = _run(capsys, ["run", "smoke", "--out", tmp_path / "r", "--set", "train.momentum=.nan"])
    lines = [e for e in err if "train.momentum" in e]
    assert (
        rc == 2 and len(lines) == 1 and lines[0].endswith("'train.momentum' must be a finite number, got nan")
    )


def test_the_python_settings_refuse_non_finite_values_when_made():
    with pytest.raises(ConfigError) as e:
        ss.TrainSettings(lr=math.inf)
    assert str(e.value) == "'train.lr' must be a finite number, got inf"
    with pytest.raises(ConfigError) as e:
        ss.TrainSettings().replace(clip=math.nan, loss_weights={"pos": -math.inf})
    assert str(e.value).splitlines() == [
        "'train.clip' must be a finite number, got nan",
        "'train.loss_weights.pos' must be a finite number, got -inf",
    ]
    with pytest.raises(ConfigError, match=r"^'search.alpha' must be a finite number, got nan$"):
        ss.SearchSettings(alpha=math.nan)
    assert ss.TrainSettings(epochs=2_000_000).problems() == [
        "'train.epochs' must be <= 1_000_000, got 2_000_000"
    ]


def test_the_size_of_a_network_is_counted_without_allocating_it():
    recipe = {"network": "shared_bottom", "kwargs": {"in_dim": 5, "kinds": {"a": "binary"}, "bottom": [7, 3],
                                                     "tower": [4], "dropout": 0.0}}  # fmt: skip
    n, size = context.recipe_bytes(recipe)
    real = list(build_recipe(recipe).parameters())
    assert n == sum(p.numel() for p in real) and size == 4 * n
    huge = {**recipe, "kwargs": {**recipe["kwargs"], "bottom": [2**20, 2**20]}}
    assert context.recipe_bytes(huge)[1] > 4 * 2**40  # counted in an instant: nothing was allocated


def test_a_network_too_large_for_the_machine_is_refused_with_its_size(tmp_path, capsys):
    sets = ["data.dataset=synthetic", "data.sizes=[60, 20, 20]", "data.tasks=null", "data.limits={}",
            "systems=[single]", "tabular.bottom=[1048576, 1048576]", "device=cpu"]  # fmt: skip
    out = tmp_path / "run"
    rc, err = _run(capsys, ["run", "smoke", "--out", out, *(a for s in sets for a in ("--set", s))])
    memory = context.device_memory(torch.device("cpu"))
    assert rc == 2 and len(err) == 1, err
    assert "the shared_bottom network asked for has" in err[0] and f"the {memory:,} bytes of memory" in err[0]
    size = int(err[0].split("parameters (")[1].split(" bytes")[0].replace(",", ""))
    assert size > memory and "make it smaller in 'tabular'" in err[0]
    assert not (out / "systems").exists() or not any((out / "systems").rglob("*.pt"))
    assert set(p.relative_to(tmp_path).parts[0] for p in _tree(tmp_path)) <= {"run"}  # nothing outside
    smaller = [a for s in sets[:-2] + ["device=cpu", "train.epochs=1"] for a in ("--set", s)]
    assert _run(capsys, ["run", "smoke", "--out", out, *smaller])[0] == 0  # the same run goes on, smaller
