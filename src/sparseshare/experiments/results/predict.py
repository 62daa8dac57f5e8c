"""Use a finished run from its directory alone: predict new data, export a task's subnet.

A run keeps, beside each system's best weights (``best.safetensors``), the recipe that rebuilds its
module (``network.json``) and, for the run, ``preprocess.json`` (vocabularies or the feature encoder).
Nothing here reads the training data or unpickles anything.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.errors import ConfigError, DataError, RunError
from sparseshare.experiments.results.output_file import check_writable
from sparseshare.experiments.systems.context import read_preprocess
from sparseshare.experiments.systems.registry import SYSTEMS
from sparseshare.export import export_subnet
from sparseshare.run_dir import read_json
from sparseshare.sharing.expert_code import Experts
from sparseshare.sharing.registry import RecipeError, UntrustedRecipe, build_recipe, check_recipe
from sparseshare.training.checkpoint import load_tensors
from sparseshare.training.trainer import load_state

# which system a command uses when none is named: the first of these the run finished (the registry's
# pick_rank), else the first it finished
PREFERENCE = tuple(
    sorted((n for n, s in SYSTEMS.items() if s.pick_rank is not None), key=lambda n: SYSTEMS[n].pick_rank)
)


def _finished_systems(run: Path) -> list[str]:
    if not paths.config(run).exists():
        raise RunError(f"{run}: not a run directory (no config.yaml)")
    root = paths.system_dir(run, "x").parent
    return sorted(p.parent.name for p in root.glob("*/result.json")) if root.is_dir() else []


def pick_system(run: Path, system: str | None) -> str:
    done = _finished_systems(run)
    if system is not None:
        if system not in done:
            raise RunError(f"{run}: system '{system}' has not finished here; finished: {done or 'none'}")
        return system
    for s in PREFERENCE + tuple(done):
        if s in done:
            return s
    raise RunError(f"{run}: no finished system yet")


def system_recipe(run: Path, system: str, task: str) -> tuple[Path, dict]:
    """(where, what) the recipe of the module ``system`` uses for ``task``: systems with one model per
    task keep it in a folder per task."""
    for where in (task, None):
        path = paths.system_recipe(run, system, where)
        if path.exists():
            recipe = read_json(path, "network recipe")
            _check(path, recipe)
            if task not in recipe.get("tasks", [task]):
                raise RunError(f"{run}: system '{system}' has no task '{task}'; it has {recipe['tasks']}")
            return path, recipe
    raise RunError(f"{run}: system '{system}' has no network.json for task '{task}'")


def _check(path: Path, recipe, shapes: dict | None = None, experts: Experts | None = None) -> None:
    """A network.json from someone else is checked before anything is built from it: its builders'
    arguments (``registry.check_recipe``), its ``tasks``, and, given the stored ``shapes``, its sizes."""
    try:
        check_recipe(recipe, shapes, experts)
    except UntrustedRecipe as e:  # nothing to repair: a factory nobody said to trust
        raise RunError(f"{path}: {e}") from None
    except RecipeError as e:
        raise RunError(f"{path}: {e}; repair the run with --repair or run it again") from None
    tasks = recipe.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise RunError(f"{path}: 'tasks' is not a list of task names; repair the run with --repair")


def load_system(
    run: Path, system: str, task: str, device="cpu", experts: Experts | None = None
) -> torch.nn.Module:
    """The trained module ``system`` uses for ``task`` (its best-dev weights), from the run alone.
    ``experts``: how to get an expert factory the run's recipe names (``sharing/expert_code.py``)."""
    path, recipe = system_recipe(run, system, task)
    best = path.with_name(paths.BEST_STATE)
    state = load_tensors(best, device)[0]
    _check(path, recipe, {n: tuple(t.shape) for n, t in state.items()}, experts)  # sizes before building
    module = build_recipe(recipe, experts)
    load_state(module, state, best)
    return module.to(device).eval()


def _run_tasks(run: Path, preprocess: dict, tasks: list[str] | None) -> list[str]:
    known = list(preprocess["tasks"])
    tasks = tasks or known
    bad = [t for t in tasks if t not in known]
    if bad:
        raise ConfigError(f"{run}: no task(s) {bad}; this run has {known}")
    return tasks


def export_run(
    run: Path, task: str, out: Path | None = None, system: str | None = None, experts: Experts | None = None
) -> tuple[Path, dict]:
    """Export ``task``'s subnet of the run's ``system`` (default: sparse sharing when the run has it);
    ``experts`` as :func:`load_system` takes it."""
    run = Path(run)
    system = pick_system(run, system)
    preprocess = read_preprocess(run)
    _run_tasks(run, preprocess, [task])
    module = load_system(run, system, task, experts=experts)
    recipe = system_recipe(run, system, task)[1]
    out = Path(out) if out else Path(f"{run.name}-{system}-{task}.safetensors")
    check_writable(out, make_folders=True)
    meta = {"run": str(run), "system": system}
    if system == "single_subnet":  # one model per task, the task's mask for every head: just the task
        meta["note"] = "single task on its subnet"
    sizes = export_subnet(module, task, out, recipe=recipe, preprocess=preprocess, meta=meta)
    return out, sizes


def _sequence_columns(preprocess: dict, tasks: list[str], width: int = 1) -> str:
    """What each column of a tagged file holds, by the 0-based index a ``columns`` corpus reads it with
    (``data.columns.word``, ``data.columns.tags``): ``0 word, 1 pos, 2 ner (bioes)`` for an input of words
    alone; the input's other ``width - 1`` columns, kept as they were, come before the tasks' columns."""
    cols = ["0 word"]
    if width == 2:
        cols.append("1 as in the input")
    elif width > 2:
        cols.append(f"1-{width - 1} as in the input")
    for i, t in enumerate(tasks, start=width):
        scheme = preprocess["tasks"][t].get("scheme")
        cols.append(f"{i} {t}" + (f" ({scheme})" if scheme else ""))
    return ", ".join(cols)


def _tag_sequences(
    run: Path, preprocess: dict, system: str, tasks: list[str], file: Path, experts=None
) -> tuple[str, int, int]:
    """(the tagged file's text, its sentences, the input's columns per row)."""
    from sparseshare.data.conll import read_columns
    from sparseshare.data.sequence import SequenceData, Vocab

    sentences = read_columns(file)
    words, chars = Vocab(preprocess["words"]), Vocab(preprocess["chars"])
    columns = []
    for t in tasks:
        tags = Vocab.tags(preprocess["tasks"][t]["tags"])
        data = SequenceData(
            t,
            {"test": [([row[0] for row in s], [tags.itos[0]] * len(s)) for s in sentences]},
            words,
            chars,
            tag_vocab=tags,
            lower_words=preprocess["lower_words"],
            max_word_len=preprocess["max_word_len"],
        )
        module = load_system(run, system, t, experts=experts)
        out: list[list[str]] = []
        with torch.no_grad():
            for batch in data.batches("test", 100):
                out += [[tags.itos[k] for k in seq] for seq in module.predict(batch, t)]
        columns.append(out)
    lines = []
    for i, sent in enumerate(sentences):
        for j, row in enumerate(sent):
            lines.append(" ".join([*row, *(col[i][j] for col in columns)]))
        lines.append("")
    return "\n".join(lines) + "\n", len(sentences), len(sentences[0][0])


def _predict_table(run: Path, preprocess: dict, system: str, tasks: list[str], file: Path, experts=None):
    import pyarrow as pa

    from sparseshare.data.encoder import Encoder
    from sparseshare.data.table_files import read_any
    from sparseshare.data.tabular import TabularBatch

    if preprocess.get("encoder") is None:
        raise RunError(f"{run}: this run kept no feature encoder (an older run): it cannot predict")
    encoder = Encoder.from_json(preprocess["encoder"])
    table = read_any(file)
    missing = [c for c in encoder.columns if c not in table.columns]
    if missing:
        raise DataError(file, None, f"missing column(s) {missing} (the model reads {encoder.columns})")
    x = encoder.features(table)
    preds = {}
    for t in tasks:
        module = load_system(run, system, t, experts=experts)
        parts = []
        with torch.no_grad():
            for start in range(0, x.shape[0], 4096):
                rows = x[start : start + 4096]
                parts.append(module.predict(TabularBatch(rows, {}, torch.arange(len(rows))), t).float().cpu())
        preds[f"pred_{t}"] = torch.cat(parts).numpy() if parts else []
    cols = {n: (c if isinstance(c, pa.ChunkedArray) else pa.array(c)) for n, c in table.columns.items()}
    for name, v in preds.items():
        if name in cols:
            raise DataError(file, None, f"the input already has a column '{name}'")
        cols[name] = pa.array(v)
    return pa.table(cols)


def predict_run(
    run: Path,
    file: Path,
    output: Path | None = None,
    system: str | None = None,
    tasks: list[str] | None = None,
    experts: Experts | None = None,
) -> str:
    """Predict every task (or ``tasks``) of the run for ``file``: a column file (sequence runs; one
    predicted tag column per task appended) or a CSV/Parquet table (tabular runs; one ``pred_<task>``
    column per task). ``experts``: how to get an expert factory the run names (``load_system``).
    Written to ``output`` (tables: .parquet or CSV), else printed. Returns a summary
    that names the output's columns.

    A tagged file has no header line: the column files it is read back from (``predict`` again, or a
    ``columns`` corpus) take a ``#`` line for a token. The summary names its columns by the 0-based
    index ``data.columns`` reads them with (:func:`_sequence_columns`); a table's header names its own."""
    run, file = Path(run), Path(file)
    if output:
        check_writable(Path(output))
    system = pick_system(run, system)
    preprocess = read_preprocess(run)
    tasks = _run_tasks(run, preprocess, tasks)
    if preprocess["kind"] == "sequence":
        text, n, width = _tag_sequences(run, preprocess, system, tasks, file, experts)
        if output:
            Path(output).write_text(text)
        else:
            sys.stdout.write(text)
        columns = _sequence_columns(preprocess, tasks, width)
        return f"tagged {n} sentences for {', '.join(tasks)} with {system}; columns: {columns}"
    table = _predict_table(run, preprocess, system, tasks, file, experts)
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if output:
        with open(output, "wb") as f:
            if Path(output).suffix.lower() in (".parquet", ".pq"):
                pq.write_table(table, f)
            else:
                pacsv.write_csv(table, f)
    else:
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().decode())
    added = ", ".join(f"pred_{t}" for t in tasks)
    return (
        f"predicted {table.num_rows} rows for {', '.join(tasks)} with {system}; columns: the input's "
        f"{table.num_columns - len(tasks)} columns, then {added}"
    )
