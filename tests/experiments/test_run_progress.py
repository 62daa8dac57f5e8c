"""What a user sees of a multi-system run (issue 21, item 8): each system's place, the time so far and
the time left, before its lines (and its bars on a terminal)."""

from __future__ import annotations

import re

from sparseshare.cli import main


def test_a_multi_system_run_says_where_it_stands_and_the_time_left(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "name: tiny\nsystems: [single, shared_bottom, mmoe]\n"
        "data: {dataset: synthetic, sizes: [300, 100, 100]}\n"
        "train: {epochs: 2, batch_size: 64}\n"
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    starts = [
        x for x in err if re.match(r"sparseshare: \[system \d/3: \w+, [\d.]+ (s|min) so far[^]]*\]$", x)
    ]
    assert [re.search(r"system (\d)/3: (\w+)", x).groups() for x in starts] == [
        ("1", "single"), ("2", "shared_bottom"), ("3", "mmoe")
    ]  # fmt: skip
    assert "left" not in starts[0] and all(re.search(r"about [\d.]+ (s|min) left\]$", x) for x in starts[1:])
    assert any(re.match(r"sparseshare: \[system 3/3: mmoe, .*\] mmoe: epoch 2/2", x) for x in err), err
