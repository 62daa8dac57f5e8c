"""Resuming never returns stale results (issue 21, item 1): warmup, search_masks and train_jointly
called again on a directory with other inputs are refused in one line naming the first differing value;
the same call resumes; deleting the fingerprint continues on purpose."""

from __future__ import annotations

import logging

import pytest
import torch

import sparseshare as ss
from sparseshare.errors import RunError
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _loaders, _tasks


def _refused(call, *needles: str) -> str:
    with pytest.raises(RunError) as err:
        call()
    text = str(err.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    assert "another directory" in text and "on purpose delete" in text and "fingerprint.json" in text
    return text


def test_train_jointly_with_another_lr_is_refused_not_answered_with_the_first_result(tmp_path):
    first = ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(lr=0.003), directory=tmp_path)
    again = ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(lr=0.003), directory=tmp_path)
    assert again.history == first.history  # the same call: the finished run, read back
    _refused(
        lambda: ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(lr=0.05), directory=tmp_path),
        "settings.lr = 0.003, not this call's 0.05",
    )
    (tmp_path / "fingerprint.json").unlink()  # on purpose: the run goes on under the new settings
    ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(lr=0.05), directory=tmp_path)
    _refused(
        lambda: ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(lr=0.003), directory=tmp_path),
        "settings.lr = 0.05",
    )


def test_other_tasks_seed_or_parameters_are_refused(tmp_path):
    ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=1), directory=tmp_path)
    smaller = [
        ss.Task.from_loaders("even", **_loaders(lambda x: (x % 2 == 0).long(), 1, (100, 60, 60))),
        _tasks()[1],
    ]
    one = SETTINGS.replace(epochs=1)
    assert _refused(lambda: ss.train_jointly(TwoTaskMLP(), smaller, one, directory=tmp_path),
                    "tasks.even.train = 200, not this call's 100")  # fmt: skip
    assert _refused(
        lambda: ss.train_jointly(
            TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=1), seed=7, directory=tmp_path
        ),
        "seed = 0, not this call's 7",
    )
    wider = TwoTaskMLP()
    wider.encoder[0] = torch.nn.Linear(8, 12)
    wider.encoder[2] = torch.nn.Linear(12, 16)
    assert _refused(lambda: ss.train_jointly(wider, _tasks(), one, directory=tmp_path),
                    "parameters.model.encoder.0.weight = [16, 8], not this call's [12, 8]")  # fmt: skip


def test_other_masks_are_refused_and_a_lower_cap_is_not_answered_with_the_longer_run(tmp_path):
    model = TwoTaskMLP()
    names = ["encoder.0.weight", "encoder.2.weight"]
    dense = {t: {n: torch.ones_like(dict(model.named_parameters())[n], dtype=torch.bool) for n in names}
             for t in model.tasks}  # fmt: skip
    ss.train_jointly(ss.SparseSharing(model, dense), _tasks(), SETTINGS, directory=tmp_path)
    halved = {t: {n: m.clone() for n, m in ms.items()} for t, ms in dense.items()}
    halved["big"]["encoder.0.weight"][::2] = False
    _refused(
        lambda: ss.train_jointly(
            ss.SparseSharing(TwoTaskMLP(), halved), _tasks(), SETTINGS, directory=tmp_path
        ),
        "masks = ",
    )
    with pytest.raises(RunError, match=r"holds 4 epochs of training, more than this call's cap of 2"):
        ss.train_jointly(ss.SparseSharing(TwoTaskMLP(), dense), _tasks(), SETTINGS.replace(epochs=2),
                         directory=tmp_path)  # fmt: skip
    res = ss.train_jointly(ss.SparseSharing(TwoTaskMLP(), dense), _tasks(), SETTINGS.replace(epochs=6),
                           directory=tmp_path)  # fmt: skip
    assert len(res.history) == 6  # a raised cap continues the same run


def test_warmup_and_search_with_other_settings_are_refused(tmp_path):
    state = ss.warmup(TwoTaskMLP(), _tasks(), SETTINGS, epochs=2, directory=tmp_path)
    again = ss.warmup(TwoTaskMLP(), _tasks(), SETTINGS, epochs=2, directory=tmp_path)
    assert all(torch.equal(state[k], again[k]) for k in state)
    _refused(lambda: ss.warmup(TwoTaskMLP(), _tasks(), SETTINGS, epochs=3, directory=tmp_path),
             "holds a warmup made with epochs = 2, not this call's 3")  # fmt: skip
    search = ss.SearchSettings(alpha=0.5, min_density=0.3, epochs_per_level=1, patience=0)
    ss.search_masks(TwoTaskMLP(), _tasks(), state, search=search, settings=SETTINGS, directory=tmp_path)
    ss.search_masks(TwoTaskMLP(), _tasks(), state, search=search, settings=SETTINGS, directory=tmp_path)
    other = search.replace(alpha=0.4)
    _refused(
        lambda: ss.search_masks(
            TwoTaskMLP(), _tasks(), state, search=other, settings=SETTINGS, directory=tmp_path
        ),
        "holds a IMP search made with search.alpha = 0.5, not this call's 0.4",
    )
    forced = search.replace(force_density={"even": 0.5})  # chooses among the levels: the same search
    ss.search_masks(TwoTaskMLP(), _tasks(), state, search=forced, settings=SETTINGS, directory=tmp_path)


def test_progress_from_before_fingerprints_continues_with_a_warning(tmp_path, caplog):
    ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=2), directory=tmp_path)
    (tmp_path / "fingerprint.json").unlink()
    with caplog.at_level(logging.WARNING, logger="sparseshare"):
        res = ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=3), directory=tmp_path)
    assert len(res.history) == 3
    assert any("continued without a fingerprint" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "fingerprint.json").exists()


def test_a_setting_added_since_the_fingerprint_is_no_difference_at_its_default(tmp_path):
    """A run directory written before a setting existed (its fingerprint lacks the key) continues when
    this call leaves the setting at its default, and is refused when it does not."""
    import json

    ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=1), directory=tmp_path, progress=False)
    path = tmp_path / "fingerprint.json"
    stored = json.loads(path.read_text())
    assert stored["settings"]["bucket"] == ss.TrainSettings().bucket == 0  # the default, taken as new
    del stored["settings"]["bucket"]
    path.write_text(json.dumps(stored))
    again = ss.train_jointly(
        TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=2), directory=tmp_path, progress=False
    )
    assert len(again.history) == 2  # continued, not refused
    del stored["settings"]["lr"]  # a setting the older run did not have, now given another value
    path.write_text(json.dumps(stored))
    _refused(
        lambda: ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=3), directory=tmp_path),
        'settings.lr = "(absent)", not this call\'s 0.2',
    )
