import numpy as np

from sparseshare.data.tabular import TabularData
from sparseshare.data.task import Task
from sparseshare.sharing.mmoe import mmoe
from sparseshare.training.trainer import TrainSettings, train

KINDS = {"a": "binary", "b": "regression"}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 400), ("dev", 200), ("test", 200)):
        x = rng.normal(size=(n, 5))
        y = {
            "a": (x[:, 0] > 0).astype(np.float32),
            "b": (0.5 * x[:, 1] + 0.1 * rng.normal(size=n)).astype(np.float32),
        }
        splits[split] = (x, y)
    return TabularData.from_arrays(splits, KINDS)


class Recorder:
    def __init__(self):
        self.steps, self.evals = [], []

    def on_step(self, step):
        self.steps.append(step)

    def on_eval(self, dev):
        self.evals.append(dev)


def test_joint_training_steps_callbacks_and_learning():
    data = _data()
    specs = {
        "a": Task("a", data, "auc"),
        "b": Task("b", data, "mse"),
    }
    mech = mmoe(5, KINDS, num_experts=3, expert_hidden=(8,), tower=(8,))
    rec = Recorder()
    s = TrainSettings(
        epochs=6,
        patience=0,
        batch_size=50,
        optimizer="adam",
        lr=0.01,
        clip=None,
        joint=True,
        loss_weights={"a": 1.0, "b": 1.0},
        eval_batch_size=500,
    )
    res = train(mech, specs, s, seed=0, device="cpu", joint_data=data, callbacks=[rec])
    assert rec.steps == list(range(1, 6 * 8 + 1))  # 400 rows / 50 = 8 steps per epoch, global numbering
    assert len(rec.evals) == 6 and set(rec.evals[0]) == {"a", "b"}
    first, best = res.history[0]["dev"], res.best_dev
    assert best["a"]["auc"] > 0.9 and best["b"]["mse"] < first["b"]["mse"]
    assert {"auc", "f1", "accuracy"} <= set(best["a"]) and {"mse", "mae"} <= set(best["b"])
