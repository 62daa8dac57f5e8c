"""Tabular readers on hostile and unusual input: one-line errors naming file and line, no silent change."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sparseshare.data.table_files import read_csv
from sparseshare.data.tabular_readers import read_table, safe_task_name
from sparseshare.errors import ConfigError, DataError


def _csv(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _rows(n: int, row) -> str:
    return "".join(row(i) + "\n" for i in range(n))


def test_a_column_mixing_numbers_and_text_names_its_first_text_value(tmp_path):
    text = "income,y\n" + _rows(20, lambda i: f"{'n/a' if i in (15, 17) else i * 100},{i % 2}")
    path = _csv(tmp_path / "train.csv", text)
    with pytest.raises(DataError) as e:
        read_table(path, {"y": "binary"})
    assert str(e.value) == (
        f"{path}:17: column 'income' mixes numbers and text (first text value 'n/a'; 2 of 20 values are "
        "text): declare it under 'numeric' or 'categorical' in the table config"
    )


def test_all_numbers_or_no_number_decide_the_kind_and_missing_markers_are_neither(tmp_path):
    text = "n,c,y\n" + _rows(
        20, lambda i: f"{'NA' if i == 3 else i},{'?' if i == 4 else 'pq'[i % 2]},{i % 2}"
    )
    data = read_table(_csv(tmp_path / "t.csv", text), {"y": "binary"})
    assert data.feature_names == ["n", "c=<unk>", "c=p", "c=q"]


def test_a_declared_categorical_column_takes_numbers_and_text_as_categories(tmp_path):
    text = "zip,y\n" + _rows(20, lambda i: f"{['12345', 'T8H1N'][i % 2]},{i % 2}")
    data = read_table(_csv(tmp_path / "t.csv", text), {"y": "binary"}, categorical=["zip"])
    assert data.feature_names == ["zip=<unk>", "zip=12345", "zip=T8H1N"]
    x = next(data.batches("train", 100)).x
    assert (x.sum(1) == 1).all() and (x[:, 0] == 0).all()  # every row in its own value's bucket


def test_a_ragged_row_names_its_line(tmp_path):
    path = _csv(tmp_path / "data.csv", "a,b,c,y\n1,2,3,0\n2,3,4,1\n3,4,5,0\n4,5,6\n5,6,7,1\n")
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f"{path}:5: expected 4 fields (as the header), found 3"
    path = _csv(tmp_path / "long.csv", "a,b\n" + "1,2\n" * 3000 + "1,2,3\n")
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f"{path}:3002: expected 2 fields (as the header), found 3"


def test_a_header_only_file_says_it_has_no_data_rows(tmp_path):
    for name, text in (("data.csv", "a,b,y\n"), ("bare.csv", "a,b,y")):
        path = _csv(tmp_path / name, text)
        with pytest.raises(DataError) as e:
            read_table(path, {"y": "binary"})
        assert str(e.value) == f"{path}: no data rows (only a header)"


def test_empty_missing_and_non_utf8_files_are_one_line_errors(tmp_path):
    path = _csv(tmp_path / "empty.csv", "")
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f"{path}:1: empty file (no header line)"
    with pytest.raises(DataError) as e:
        read_csv(tmp_path / "nope.csv")
    assert str(e.value) == f"{tmp_path / 'nope.csv'}: file not found"
    path = _csv(tmp_path / "latin1.csv", b"a,b\n1,2\n1,2\n1,caf\xe9\n")
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f"{path}:4: invalid UTF-8 (byte 0xe9); save the file as UTF-8"
    path = _csv(tmp_path / "dup.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f"{path}:1: duplicate column names ['a']"


def test_rows_keep_their_lines_across_blank_lines_and_quoted_line_breaks(tmp_path):
    path = _csv(tmp_path / "t.csv", '\ufeffa,b\r\n1,"two\r\nlines"\r\n\r\n3,x\r\n4,y\r\n')
    table = read_csv(path)
    assert table.lines.tolist() == [2, 5, 6] and table.strings("b").to_pylist() == ["two\r\nlines", "x", "y"]
    assert list(table.columns) == ["a", "b"]  # the byte-order mark is not part of the first name
    path = _csv(tmp_path / "open.csv", 'a,b\n1,x\n2,"y\n3,z\n')
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(e.value) == f'{path}:3: a quote (") opened on this line is never closed'


def test_an_infinite_number_is_not_taken_as_a_value_or_a_missing_label(tmp_path):
    path = _csv(tmp_path / "t.csv", "f,y\n" + _rows(10, lambda i: f"{'1e999' if i == 4 else i},{i % 2}"))
    with pytest.raises(DataError) as e:
        read_table(path, {"y": "binary"})
    assert str(e.value) == f"{path}:6: column 'f': value '1e999' is not a finite number"
    pq.write_table(pa.table({"f": [1.0, 2.0, np.inf, 4.0], "y": [0, 1, 0, 1]}), tmp_path / "t.parquet")
    with pytest.raises(DataError) as e:
        read_table(tmp_path / "t.parquet", {"y": "binary"}, fractions=(1, 0, 0))
    assert str(e.value) == f"{tmp_path / 't.parquet'}: row 3: column 'f': value 'inf' is not a finite number"


def test_one_class_in_a_split_is_a_problem_line(tmp_path):
    header = "x,income,spend\n"
    train = _csv(tmp_path / "train.csv", header + _rows(6, lambda i: f"{i},{i % 2},{i}"))
    dev = _csv(tmp_path / "dev.csv", header + _rows(4, lambda i: f"{i},0,{i}"))
    test = _csv(tmp_path / "test.csv", header + _rows(3, lambda i: f"{i},{'' if i else 1},{i}"))
    data = read_table(train, {"income": "binary", "spend": "regression"}, dev=dev, test=test)
    assert data.problems() == [
        "task 'income': dev has one class only (all 0 on 4 labelled rows): its AUC is undefined there",
        "task 'income': test has one class only (all 1 on 1 labelled rows): its AUC is undefined there",
    ]
    assert data.for_tasks(["income"]).problems() == data.problems()


def test_a_split_without_labels_and_a_constant_train_target_are_problem_lines(tmp_path):
    header = "x,click,spend\n"
    train = _csv(tmp_path / "train.csv", header + _rows(6, lambda i: f"{i},{i % 2},2.5"))
    test = _csv(tmp_path / "test.csv", header + _rows(3, lambda i: f"{i},{i % 2},NA"))
    data = read_table(train, {"click": "binary", "spend": "regression"}, test=test, fractions=(4, 2, 0))
    assert data.num_examples("test") == 3 and np.isnan(data.labels("test")["spend"]).all()
    assert data.problems() == [
        "task 'spend': train labels are constant (all 2.5 on 4 labelled rows)",
        "task 'spend': test has no labelled row",
    ]
    with pytest.raises(DataError, match="'spend' has no values"):  # none in the train file: nothing to learn
        read_table(test, {"spend": "regression"})


def test_target_columns_become_safe_task_names(tmp_path):
    assert [safe_task_name(c) for c in ("income/50k", "y.2", " my target ", "a-b_c", "x  ./ y")] == [
        "income_50k", "y_2", "my_target", "a-b_c", "x_y",
    ]  # fmt: skip
    with pytest.raises(ConfigError) as e:
        safe_task_name("./")
    assert str(e.value) == "target column './' has no letter or digit to name its task; rename it"
    header = "x,income/50k,y.2,my target\n"
    path = _csv(tmp_path / "t.csv", header + _rows(20, lambda i: f"{i},{i % 2},{i * 0.5},{i % 3}"))
    data = read_table(path, {"income/50k": "binary", "y.2": "regression", "my target": "regression"})
    assert data.kinds == {"income_50k": "binary", "y_2": "regression", "my_target": "regression"}
    assert data.task_columns == {"income_50k": "income/50k", "y_2": "y.2", "my_target": "my target"}
    assert set(next(data.batches("train", 4)).y) == set(data.tasks)
    assert data.labels("train")["income_50k"].tolist() == [v % 2 for v in data.labels("train")["y_2"] * 2]
    assert data.limited({"train": 2}).task_columns == data.task_columns


def test_two_target_columns_with_one_task_name_are_a_config_error(tmp_path):
    path = _csv(tmp_path / "t.csv", "x,a.b,a/b\n" + _rows(10, lambda i: f"{i},{i % 2},{i}"))
    with pytest.raises(ConfigError) as e:
        read_table(path, {"a.b": "binary", "a/b": "regression"})
    assert str(e.value) == "target columns 'a.b' and 'a/b' both become task 'a_b'"


def test_feature_names_with_dots_and_slashes_work_end_to_end(tmp_path):
    text = "a.b,x/y,y\n" + _rows(20, lambda i: f"{i},{'pq'[i % 2]},{i % 2}")
    path = _csv(tmp_path / "t.csv", text)
    data = read_table(path, {"y": "binary"}, fractions=(1, 0, 0))
    assert data.feature_names == ["a.b", "x/y=<unk>", "x/y=p", "x/y=q"]
    batch = next(data.batches("train", 100))
    assert batch.x[:, 0].tolist() == pytest.approx(((np.arange(20) - 9.5) / np.arange(20).std()).tolist())
    assert batch.x[:, 2:].tolist() == [[1, 0], [0, 1]] * 10
    assert torch.equal(data.encoder.features(read_csv(path)), batch.x)
