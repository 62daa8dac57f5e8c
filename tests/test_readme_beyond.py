"""The README's "Beyond the papers" code runs, and a weighting written as it shows trains."""

from __future__ import annotations

from tests.helpers import readme_blocks


def test_the_loss_weighting_block_runs_and_its_weighting_combines():
    import torch

    blocks = readme_blocks("Beyond the papers", "python")
    assert blocks
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    assert scope["settings"].weighting == "pcgrad" and not scope["settings"].problems()
    w = scope["weighting"]
    loss = w.combine({"income": torch.tensor(2.0), "marital": torch.tensor(10.0)})
    assert float(loss) == 3.0
