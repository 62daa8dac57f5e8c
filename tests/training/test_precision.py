"""``train.precision`` (issue goal 4): bf16 and fp16 autocast of the training forward, fp16 with a gradient
scaler whose skipped steps move nothing, masks exact under both, dev scored in fp32; the key validated
in one line, settable from the command line, and no difference to a run directory written before it.
"""

from __future__ import annotations

import json

import pytest
import torch

from sparseshare.data.task import Task
from sparseshare.errors import ConfigError
from sparseshare.sharing import SparseSharing
from sparseshare.training import trainer as trainer_mod
from sparseshare.training.settings import TrainSettings
from sparseshare.training.trainer import train
from tests.helpers import ToyData, random_masks, toy_tagger


def _tasks(tasks=("pos", "ner"), train_size=24):
    return {t: Task(t, ToyData(i, sizes=(train_size, 8, 8)), "accuracy") for i, t in enumerate(tasks)}


class DtypeRecorder:
    """A forward hook on a Linear: the dtype of its output, per call, with the mode it ran in."""

    def __init__(self, module: torch.nn.Module):
        self.seen: list[tuple[bool, torch.dtype]] = []
        module.register_forward_hook(lambda m, i, out: self.seen.append((m.training, out.dtype)))

    def dtypes(self, training: bool) -> set[torch.dtype]:
        return {d for t, d in self.seen if t == training}


@pytest.mark.parametrize(
    "precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_the_training_matmuls_run_in_the_chosen_dtype_and_dev_in_fp32(precision, dtype):
    model = toy_tagger()
    rec = DtypeRecorder(model.heads["pos"].proj)
    settings = TrainSettings(epochs=1, patience=0, batch_size=8, precision=precision)
    res = train(model, _tasks(), settings, seed=0, device="cpu", progress=False)
    assert rec.dtypes(training=True) == {dtype}
    assert rec.dtypes(training=False) == {torch.float32}  # dev scores: fp32, whatever trained
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32
    assert torch.isfinite(torch.tensor(res.history[0]["loss"]))


def test_fp32_is_the_plain_step_bit_for_bit():
    """The default adds nothing to a step: the same weights as before the option existed."""
    runs = []
    for settings in (
        TrainSettings(epochs=1, batch_size=8),
        TrainSettings(epochs=1, batch_size=8, precision="fp32"),
    ):
        model = toy_tagger()
        train(model, _tasks(), settings, seed=0, device="cpu", progress=False)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def _masked(seed=0):
    model = toy_tagger(seed=seed, tasks=("pos",), hidden=6)
    return SparseSharing(model, random_masks(model, ["pos"], 0.5, seed=seed))


def _bits(mech) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in mech.named_parameters()}


def _outside_unchanged(mech, before, opt_state=None) -> None:
    """Every masked weight (and its optimizer state, when given) outside M_pos as it was: bit for bit."""
    for n, m in mech.mask("pos").items():
        p = dict(mech.named_parameters())[f"model.{n}"]
        assert torch.equal(p[~m], before[f"model.{n}"][~m]), n
        for k, v in (opt_state or {}).get(p, {}).items():
            if torch.is_tensor(v) and v.shape == p.shape:
                assert torch.count_nonzero(v[~m]) == 0, (n, k)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("optimizer", [{"optimizer": "adam", "lr": 0.01}, {"momentum": 0.9}])
def test_nothing_outside_the_mask_moves_under_autocast(precision, optimizer):
    mech = _masked()
    before = _bits(mech)
    opts = []
    real = trainer_mod.make_optimizer
    with pytest.MonkeyPatch.context() as mp:  # keep the optimizer, to read its state afterwards
        mp.setattr(trainer_mod, "make_optimizer", lambda *a, **k: opts.append(real(*a, **k)) or opts[-1])
        settings = TrainSettings(
            epochs=2, patience=0, batch_size=8, precision=precision, weight_decay=0.01, **optimizer
        )
        train(mech, _tasks(("pos",)), settings, seed=0, device="cpu", progress=False)
    params = dict(mech.model.named_parameters())
    inside_moved = [
        not torch.equal(params[n][m], before[f"model.{n}"][m]) for n, m in mech.mask("pos").items()
    ]
    assert any(inside_moved)  # it trained
    _outside_unchanged(mech, before, opts[0].state)


def _one_step(mech, opt, amp, settings) -> float:
    """One training step of 'pos' through the trainer's own step (a task of one batch); its loss."""
    tasks = _tasks(("pos",), train_size=settings.batch_size)
    params = [p for p in mech.parameters() if p.requires_grad]
    stream = trainer_mod._EpochStream(tasks, settings)
    step = trainer_mod._step_loss
    return trainer_mod._train_epoch(mech, opt, amp, step, params, stream, settings, 0, 0, "cpu", [])


@pytest.mark.parametrize("fused", [False, True])
def test_an_fp16_step_whose_gradients_overflow_is_skipped_and_moves_nothing(fused):
    """A scale large enough that the fp16 gradients overflow: the scaler skips the step, and the weights
    and the Adam state (inside and outside M_t) are exactly as they were; the loss was finite, so no
    TrainingError; the scale backs off."""
    mech = _masked()
    settings = TrainSettings(batch_size=8, precision="fp16", optimizer="adam", lr=0.01, fused=fused)
    params = [p for p in mech.parameters() if p.requires_grad]
    amp = trainer_mod._Precision("fp16", torch.device("cpu"))
    opt = trainer_mod.make_optimizer(params, "adam", 0.01, fused=fused)
    assert _one_step(mech, opt, amp, settings) > 0  # a normal step: the Adam state exists now
    assert amp.scaler.get_scale() == 2.0**16  # it was taken
    weights = _bits(mech)
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)
    loss = _one_step(mech, opt, amp, settings)
    assert torch.isfinite(torch.tensor(loss))
    assert amp.scaler.get_scale() == 2.0**59  # the step was skipped: the scale backed off
    assert all(torch.equal(p, weights[n]) for n, p in mech.named_parameters())
    for p, s in opt.state.items():
        assert all(torch.equal(v, state[id(p)][k]) for k, v in s.items())
    trainer_mod._check_finite(loss, "train", 0, settings)  # no error


def test_fp16_trains_and_resumes_with_its_scale(tmp_path):
    settings = TrainSettings(epochs=2, patience=0, batch_size=8, precision="fp16")
    whole = toy_tagger()
    train(whole, _tasks(), settings, seed=0, device="cpu", progress=False)
    half = toy_tagger()
    train(
        half, _tasks(), settings.replace(epochs=1), seed=0, device="cpu", directory=tmp_path, progress=False
    )
    from sparseshare.training.checkpoint import load_training_state

    assert "scaler" in load_training_state(tmp_path / "last.safetensors")[2]
    rest = toy_tagger(seed=5)  # other initial weights: the checkpoint supplies them
    train(rest, _tasks(), settings, seed=0, device="cpu", directory=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), rest.state_dict().values()))


def test_an_unknown_precision_is_one_line_naming_the_key():
    assert TrainSettings(precision="fp8").problems() == [
        "'train.precision': unknown precision 'fp8'; valid: ['fp32', 'bf16', 'fp16']"
    ]
    with pytest.raises(ConfigError, match=r"^'train.precision': unknown precision 'half'; valid: "):
        TrainSettings(precision="half").check()


def test_a_run_directory_from_before_the_options_resumes_and_a_changed_one_is_refused(tmp_path):
    """The fingerprint of a run written before these keys existed lacks them: at their defaults that is
    no difference (the run continues), set otherwise it is (refused, naming the key)."""
    settings = TrainSettings(epochs=1, patience=0, batch_size=8)
    train(toy_tagger(), _tasks(), settings, seed=0, device="cpu", directory=tmp_path, progress=False)
    path = tmp_path / "fingerprint.json"
    old = json.loads(path.read_text())
    for key in ("precision", "fused", "compile", "drop_last"):
        del old["settings"][key]
    path.write_text(json.dumps(old))
    res = train(
        toy_tagger(),
        _tasks(),
        settings.replace(epochs=2),
        seed=0,
        device="cpu",
        directory=tmp_path,
        progress=False,
    )
    assert res.epochs_run == 2
    from sparseshare.errors import RunError

    with pytest.raises(RunError, match=r"settings.precision = \"\(absent\)\", not this call.s \"bf16\""):
        train(toy_tagger(), _tasks(), settings.replace(epochs=3, precision="bf16"), seed=0, device="cpu",
              directory=tmp_path, progress=False)  # fmt: skip


def test_the_command_line_sets_the_precision_and_refuses_an_unknown_one(tmp_path, capsys):
    from sparseshare.cli import main

    out = tmp_path / "run"
    sets = ["data.limits={train: 16, dev: 8, test: 8}", "systems=[hard]", "train.epochs=1"]
    sets += ["train.precision=bf16", "train.fused=true", "train.drop_last=true"]
    assert main(["run", "smoke", "--out", str(out)] + [a for s in sets for a in ("--set", s)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert all(0 <= r["test"] <= 1 for r in res["systems"]["hard"]["tasks"].values())
    capsys.readouterr()
    assert main(["run", "smoke", "--out", str(tmp_path / "bad"), "--set", "train.precision=fp8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'train.precision': unknown precision 'fp8'" in err
