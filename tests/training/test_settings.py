"""The settings sections import no torch (an experiment config is validated without a model's code), and
the names they accept are exactly the implementations' registries."""

import subprocess
import sys

from sparseshare.pruning.magnitude import STRATEGIES
from sparseshare.training.samplers import SAMPLERS
from sparseshare.training.settings import OPTIMIZERS, SAMPLER_NAMES, STRATEGY_NAMES
from sparseshare.training.trainer import make_optimizer


def test_the_names_the_settings_accept_are_the_implementations():
    assert set(SAMPLER_NAMES) == set(SAMPLERS)
    assert set(STRATEGY_NAMES) == set(STRATEGIES)
    import torch

    for name in OPTIMIZERS:
        make_optimizer([torch.nn.Parameter(torch.zeros(1))], name, 0.1, 0.0, 0.0)


def test_the_config_schema_loads_without_torch_or_any_runner():
    code = (
        "import sys; import sparseshare.experiments.config.experiment as e; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('sparseshare.experiments.systems', "
        "'sparseshare.experiments.run', 'sparseshare.models', 'sparseshare.sharing'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_weighting_names_are_the_implementations_and_gradient_ones_are_flagged_alike():
    """settings.py names the weightings without torch; each name builds, and the settings' 'compares
    gradients' is the object's own ``gradients`` (so a config's joint-steps check matches the trainer's)."""
    import torchjd.aggregation as jd

    from sparseshare.training.settings import JD_AGGREGATORS, WEIGHTING_NAMES, TrainSettings
    from sparseshare.training.weighting import WEIGHTINGS, make_weighting

    assert set(WEIGHTING_NAMES) == set(WEIGHTINGS)
    assert all(hasattr(jd, n) for n in JD_AGGREGATORS)
    for name in [*WEIGHTING_NAMES, *(f"torchjd.{n}" for n in JD_AGGREGATORS)]:
        built = make_weighting(name, ["a", "b"])
        assert built.name == name
        assert built.gradients == TrainSettings(weighting=name).gradient_weighting(), name
