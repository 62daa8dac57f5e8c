"""Each task's search and each task trained alone draw from a stream named by the task (issue 19, item 1)."""

import torch

from sparseshare.data.task import Task
from sparseshare.pruning import prunable_names
from sparseshare.training.pipeline import search_masks
from sparseshare.training.search import SearchSettings
from sparseshare.training.streams import level_seed, stream_seed, task_seed
from sparseshare.training.trainer import TrainSettings
from tests.helpers import ToyData, toy_tagger

TRAIN = TrainSettings(epochs=1, patience=0, batch_size=8, lr=0.2)
SEARCH = SearchSettings(warmup_epochs=0, epochs_per_level=1, patience=0, alpha=0.5, min_density=0.5)


class _Recorder:
    """What the training loop drew: every training batch's sentence indices and every dropout mask,
    per task (the task being searched is the one whose data is asked for batches)."""

    def __init__(self):
        self.batches: dict[str, list[tuple]] = {}
        self.dropout: dict[str, list[torch.Tensor]] = {}
        self.task = None

    def data(self, task: str, seed: int = 0) -> ToyData:
        data, batches = ToyData(seed), ToyData.batches

        def recorded(split, batch_size, shuffle=False, generator=None):
            for b in batches(data, split, batch_size, shuffle, generator):
                if split == "train":
                    self.task = task
                    self.batches.setdefault(task, []).append(tuple(b.index.tolist()))
                yield b

        data.batches = recorded
        return data

    def watch(self, model: torch.nn.Module) -> None:
        def hook(module, inputs, output):
            if module.training and self.task is not None:
                self.dropout.setdefault(self.task, []).append((output == 0).flatten()[:64].clone())

        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.register_forward_hook(hook)


def _search(tasks: list[str], rec: _Recorder, seed: int = 5):
    model = toy_tagger(seed=0, tasks=tuple(tasks), dropout=0.5)
    rec.watch(model)  # the search deep-copies the model per level: the hooks go along
    specs = {t: Task(t, rec.data(t), "accuracy") for t in tasks}  # the same sentences for every task
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(dict(model.named_parameters()))
    assert names
    return search_masks(model, specs, state, search=SEARCH, settings=TRAIN, seed=seed, device="cpu")


def test_two_tasks_over_the_same_sentences_get_their_own_batches_and_dropout():
    rec = _Recorder()
    found = _search(["pos", "ner"], rec)
    assert len(rec.batches["pos"]) == len(rec.batches["ner"]) > 0
    assert rec.batches["pos"] != rec.batches["ner"]  # other batch orders at every level
    assert len(rec.dropout["pos"]) == len(rec.dropout["ner"]) > 0
    assert not all(torch.equal(a, b) for a, b in zip(rec.dropout["pos"], rec.dropout["ner"]))
    for t in ("pos", "ner"):  # each level's stream is recorded beside its score
        assert [lv.seed for lv in found[t].levels] == [
            level_seed(5, t, z) for z in range(len(found[t].levels))
        ]
    assert found["pos"].levels[0].seed != found["ner"].levels[0].seed


def test_a_tasks_stream_does_not_depend_on_the_tasks_beside_it():
    alone, beside, reordered = _Recorder(), _Recorder(), _Recorder()
    a = _search(["ner"], alone)
    b = _search(["pos", "ner"], beside)
    c = _search(["ner", "pos"], reordered)
    assert alone.batches["ner"] == beside.batches["ner"] == reordered.batches["ner"]
    for x, y in zip(alone.dropout["ner"], beside.dropout["ner"]):
        assert torch.equal(x, y)
    for x, y in zip(alone.dropout["ner"], reordered.dropout["ner"]):
        assert torch.equal(x, y)
    # (the scores may differ: the heads of a model with more tasks are initialised in another order)
    assert [lv.seed for lv in a["ner"].levels] == [lv.seed for lv in b["ner"].levels]
    assert [lv.seed for lv in a["ner"].levels] == [lv.seed for lv in c["ner"].levels]


def test_stream_seeds_are_named_stable_and_distinct():
    assert stream_seed(1, "task", "ner") == stream_seed(1, "task", "ner")
    assert 0 <= task_seed(1, "ner") < 2**31
    # fixed values: the same on every machine and Python (a hash, not Python's salted hash())
    assert task_seed(1, "ner") == stream_seed(1, "task", "ner") == 2019096472
    seeds = {task_seed(s, t) for s in range(3) for t in ("pos", "ner", "chunk")}
    seeds |= {level_seed(s, t, z) for s in range(3) for t in ("pos", "ner", "chunk") for z in range(5)}
    assert len(seeds) == 3 * 3 + 3 * 3 * 5
