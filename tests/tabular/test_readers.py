"""Readers of the papers' data sets, on small files in each exact format (and the real Student data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparseshare.data.tabular_readers import (
    CENSUS_COLUMNS,
    CENSUS_NUMERIC,
    read_census,
    read_movielens,
    read_student,
)
from sparseshare.errors import DataError

STUDENT = Path(__file__).resolve().parents[3] / "shared" / "data" / "student"


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


def test_movielens_tasks_age_scaling_and_split(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    _atomic(d / "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
            ["1\t20\tM\tstudent\t85711", "2\t60\tF\tother\t94043", "3\t40\tM\twriter\tT8H1N"])  # fmt: skip
    _atomic(d / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
            ['1\tToy "Story"\t1995\tAnimation Comedy', "2\tHeat\tunkonwn\tAction"])  # fmt: skip
    inter = [f"{1 + k % 3}\t{1 + k % 2}\t{1 + k % 5}\t{880000000 + k}" for k in range(100)]
    _atomic(d / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float", inter)
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
