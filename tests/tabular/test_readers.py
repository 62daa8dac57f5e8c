"""Readers of the papers' data sets, on small files in each exact format (and the real Student data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparseshare.data.tabular_readers import (
    CENSUS_COLUMNS,
    CENSUS_NUMERIC,
    STUDENT_FEATURES,
    read_census,
    read_movielens,
    read_student,
)
from sparseshare.errors import ConfigError, DataError

STUDENT = Path(__file__).resolve().parents[3] / "shared" / "data" / "student"
CONFIGS = Path(__file__).resolve().parents[2] / "src" / "sparseshare" / "configs"


def _census_row(i: int, income: str, marital: str) -> str:
    values = []
    for j, name in enumerate(CENSUS_COLUMNS):
        if name == "income":
            values.append(income)
        elif name == "marital stat":
            values.append(marital)
        elif name == "instance weight":
            values.append(f"{1000 + i}.5")
        elif name in CENSUS_NUMERIC:
            values.append(str(20 + i + j))
        else:
            values.append(["Private", "Not in universe", "?"][(i + j) % 3])
    return ", ".join(values)  # the UCI files put a space after every comma


def _census(tmp_path, bad_label=False):
    d = tmp_path / "census"
    d.mkdir()
    labels = [("- 50000.", "Never married"), ("50000+.", "Divorced"), ("- 50000.", "Widowed"),
              ("50000+.", "Married-civilian spouse present")] * 3  # fmt: skip
    train = [_census_row(i, *labels[i]) for i in range(12)]
    if bad_label:
        train[5] = train[5].replace("50000+.", "50000+ dollars")
    (d / "census_income_1994_1995_train.csv").write_text("\n".join(train) + "\n")
    (d / "census_income_1994_1995_test.csv").write_text(
        "\n".join(_census_row(i, *labels[i]) for i in range(8))
    )
    return d


def test_census_tasks_features_and_splits(tmp_path):
    data = read_census(_census(tmp_path))
    assert data.tasks == ["income", "marital"] and set(data.kinds.values()) == {"binary"}
    assert [data.num_examples(s) for s in ("train", "dev", "test")] == [12, 4, 4]
    y = data.labels("train")
    assert y["income"].tolist() == [0, 1, 0, 1] * 3 and y["marital"].tolist() == [1, 0, 0, 0] * 3
    names = data.feature_names
    assert "age" in names and not any(n.startswith(("instance weight", "marital", "income")) for n in names)
    assert sum(n.endswith("=<unk>") for n in names) == 39 - 7  # one block per categorical column
    x = next(data.batches("train", 12)).x
    assert x[:, 0].mean().abs() < 1e-5  # age standardized on train
    # dev and test are the two halves of the official test file
    assert (
        sorted(data.labels("dev")["income"].tolist() + data.labels("test")["income"].tolist())
        == [0] * 4 + [1] * 4
    )


def test_census_unexpected_label_names_line_and_column(tmp_path):
    with pytest.raises(DataError, match="column 'income': unexpected value '50000\\+ dollars'") as e:
        read_census(_census(tmp_path, bad_label=True))
    assert e.value.line == 6


def _atomic(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header] + rows) + "\n")


def _movielens(tmp_path: Path) -> Path:
    d = tmp_path / "ml"
    d.mkdir()
    _atomic(d / "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
            ["1\t20\tM\tstudent\t85711", "2\t60\tF\tother\t94043", "3\t40\tM\twriter\tT8H1N"])  # fmt: skip
    _atomic(d / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
            ['1\tToy "Story"\t1995\tAnimation Comedy', "2\tHeat\tunkonwn\tAction"])  # fmt: skip
    inter = [f"{1 + k % 3}\t{1 + k % 2}\t{1 + k % 5}\t{880000000 + k}" for k in range(100)]
    _atomic(d / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float", inter)
    return d


def test_movielens_tasks_age_scaling_and_split(tmp_path):
    d = _movielens(tmp_path)
    data = read_movielens(d)
    assert data.kinds == {"rating": "binary", "age": "regression"}
    assert [data.num_examples(s) for s in ("train", "dev", "test")] == [63, 7, 30]
    age = {s: data.labels(s)["age"] for s in ("train", "dev", "test")}
    assert age["train"].min() == 0.0 and age["train"].max() == 1.0
    assert set(np.round(np.concatenate(list(age.values())), 6)) <= {0.0, 0.5, 1.0}
    names = data.feature_names
    assert "genre=Animation" in names and "release_year" in names and "occupation=student" in names
    assert not any(n.startswith(("age", "user_id", "zip_code=", "rating")) for n in names)
    assert any(n.startswith("user_id=") for n in read_movielens(d, identify_users=True).feature_names)
    ratings = np.array([1 + k % 5 for k in range(100)])
    assert data.labels("train")["rating"].mean() + 1e-9 >= 0 and (ratings > 3).sum() == 40
    total = sum(data.labels(s)["rating"].sum() for s in ("train", "dev", "test"))
    assert total == 40


def test_movielens_unknown_user_is_an_error(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    _atomic(d / "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
            ["1\t20\tM\tstudent\t85711"])  # fmt: skip
    _atomic(d / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
            ["1\tHeat\t1995\tAction"])  # fmt: skip
    _atomic(d / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float",
            ["1\t1\t4\t1", "9\t1\t4\t2"])  # fmt: skip
    with pytest.raises(DataError, match="'9' is not in") as e:
        read_movielens(d)
    assert e.value.line == 3


@pytest.mark.skipif(not STUDENT.is_dir(), reason="shared Student data not present")
def test_student_tasks_and_grades():
    por = read_student(STUDENT, ("por",))
    assert por.tasks == ["por_G1", "por_G2", "por_G3"]
    assert [por.num_examples(s) for s in ("train", "dev", "test")] == [389, 130, 130]
    assert not any(n.split("=")[0] in ("G1", "G2", "G3") for n in por.feature_names)
    y = por.labels("train")
    assert all(v.min() >= 0 and v.max() <= 1 for v in y.values())
    both = read_student(STUDENT)
    assert len(both.tasks) == 6 and "subject=mat" in both.feature_names
    assert both.num_examples("train") == 389 + 237
    mat = both.for_tasks(["mat_G3"])
    assert mat.num_examples("test") == 79 and np.isnan(mat.labels("test")["por_G1"]).all()


def _block(names: list[str], column: str) -> int:
    """The width of a feature column's block: its one-hot (or multi-hot, or single numeric) features."""
    return sum(n == column or n.startswith(f"{column}=") for n in names)


def _same_rows_and_labels(a, b) -> None:
    for s in ("train", "dev", "test"):
        assert a.num_examples(s) == b.num_examples(s)
        la, lb = a.labels(s), b.labels(s)
        assert all(np.array_equal(la[t], lb[t], equal_nan=True) for t in la)


def test_movielens_exclude_features_removes_whole_blocks(tmp_path):
    d = _movielens(tmp_path)
    full = read_movielens(d)
    for column, width in (("item_id", 3), ("genre", 3), ("release_year", 1), ("zip_region", 4)):
        assert _block(full.feature_names, column) == width  # unknown bucket + the values seen twice
        cut = read_movielens(d, exclude=[column])
        assert len(cut.feature_names) == len(full.feature_names) - width
        assert not any(n.startswith(column) for n in cut.feature_names)
        assert [n for n in full.feature_names if _block([n], column) == 0] == cut.feature_names
        assert next(cut.batches("train", 63)).x.shape[1] == len(cut.feature_names)
        _same_rows_and_labels(full, cut)  # the split and the labels do not depend on the features
    both = read_movielens(d, exclude=["item_id", "genre"])
    assert len(both.feature_names) == len(full.feature_names) - 6


def test_census_and_student_exclude_features(tmp_path):
    full = read_census(_census(tmp_path))
    cut = read_census(tmp_path / "census", exclude=["age", "class of worker"])
    width = _block(full.feature_names, "class of worker")
    assert width >= 2 and len(cut.feature_names) == len(full.feature_names) - 1 - width
    assert not any(n.startswith(("age", "class of worker")) for n in cut.feature_names)
    _same_rows_and_labels(full, cut)
    if STUDENT.is_dir():
        for subject in ("por", "mat"):  # the columns a config may name are the file's
            header = (STUDENT / f"student-{subject}.csv").read_text().splitlines()[0].split(";")
            assert tuple(c for c in header if c not in ("G1", "G2", "G3")) == STUDENT_FEATURES
        full, cut = read_student(STUDENT), read_student(STUDENT, exclude=["Mjob", "absences"])
        width = _block(full.feature_names, "Mjob")
        assert width == 6 and len(cut.feature_names) == len(full.feature_names) - 1 - width
        assert not any(n.startswith(("Mjob", "absences")) for n in cut.feature_names)
        _same_rows_and_labels(full, cut)


def test_exclude_features_unknown_column_is_an_error_listing_the_columns(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown feature column\(s\) \['title'\]; .*'item_id'"):
        read_movielens(_movielens(tmp_path), exclude=["title"])
    with pytest.raises(ConfigError, match=r"unknown feature column\(s\) \['user_id'\]"):
        read_movielens(tmp_path / "ml", exclude=["user_id"])  # not a feature unless identify_users
    assert not any(
        n.startswith("user_id")
        for n in read_movielens(tmp_path / "ml", identify_users=True, exclude=["user_id"]).feature_names
    )


def _config(dataset: str, *overrides: str):
    from sparseshare.experiments.systems.checks import load_experiment

    return load_experiment(CONFIGS / f"pbfs_{dataset}.yaml", list(overrides))


def test_data_exclude_features_in_a_config(tmp_path):
    from sparseshare.experiments.config.datasets import load_tabular

    d = _movielens(tmp_path)
    full = load_tabular(_config("movielens", f"data.data_dir={d}").data, seed=1)
    cut = load_tabular(_config("movielens", f"data.data_dir={d}", "data.exclude_features=[item_id]").data, 1)
    assert len(cut.feature_names) == len(full.feature_names) - 3
    assert not any(n.startswith("item_id") for n in cut.feature_names)
    assert _config("movielens").data.exclude_features == []  # the default: every feature
    unknown = {
        "movielens": ("cast", r"\['item_id', 'release_year', 'genre', 'gender', 'occupation', 'zip_region']"),
        "census": ("income", r"\['age', 'class of worker', .*, 'weeks worked in year', 'year'\]"),
        "student": ("G3", r"\['school', 'sex', .*, 'health', 'absences', 'subject'\]"),
    }  # fmt: skip
    for dataset, (name, columns) in unknown.items():
        message = rf"unknown feature column\(s\) \['{name}'\] of '{dataset}'; its columns: {columns}$"
        with pytest.raises(ConfigError, match=rf"'data.exclude_features': {message}") as e:
            _config(dataset, f"data.exclude_features=[{name}]")
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"'data.exclude_features': not an option of dataset 'synthetic'"):
        _config("synthetic", "data.exclude_features=[x]")
    with pytest.raises(ConfigError, match="leaves 'movielens' without any feature"):
        _config(
            "movielens",
            "data.exclude_features=[item_id, release_year, genre, gender, occupation, zip_region]",
        )
