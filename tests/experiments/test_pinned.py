"""The pinned-numbers comparison can fail: what it lets through is the CPU kernels' float noise only."""

from __future__ import annotations

import copy
import json

import pytest

from tests.experiments import pinned


@pytest.fixture(scope="module")
def census() -> dict:
    return pinned.expected("census_small")


def test_a_run_equal_to_its_pin_and_one_within_the_kernels_noise_both_match(census):
    assert pinned.mismatches(census, census) == []
    noisy = json.loads(json.dumps(census))
    noisy["systems"]["sparse"]["curves"]["sparse"][1] += 1.6e-5  # one of 250 x 250 AUC pairs flipped
    assert pinned.mismatches(noisy, census) == []


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda d: d["systems"]["sparse"]["curves"]["sparse"].__setitem__(1, 0.7277), "/curves/sparse[1]"),
        (lambda d: d["systems"]["single"].__setitem__("params", 35731), "/single/params"),
        (lambda d: d["systems"]["sparse"]["search"]["income"][0].__setitem__(2, 1), "/search/income[0][2]"),
        (lambda d: d["systems"]["sparse"]["search"]["income"].pop(), "/search/income: "),
        (lambda d: d["systems"].pop("mmoe"), "/systems/mmoe: missing"),
        (lambda d: d["systems"]["single"]["tasks"]["income"]["dev"].update(auc=float("nan")), "/dev/auc"),
    ],
)
def test_a_changed_number_seed_or_shape_is_named_by_its_path(census, change, where):
    got = copy.deepcopy(census)
    change(got)
    found = pinned.mismatches(got, census)
    assert len(found) == 1 and where in found[0], found
