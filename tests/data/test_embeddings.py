import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparseshare.data.embeddings import embedding_matrix, load_glove
from sparseshare.errors import DataError


def test_embedding_matrix_found_rows_lowercase_oov_range_and_pad():
    words = ["the", "cat", "the"]
    vectors = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]], dtype=np.float32)
    vocab = ["<pad>", "<unk>", "The", "cat", "zebra"] + [f"oov{i}" for i in range(200)]
    mat, found = embedding_matrix(vocab, words, vectors, 4, np.random.default_rng(0))
    assert mat.shape == (205, 4) and mat.dtype == np.float32 and found == 2
    assert np.array_equal(mat[2], vectors[0])  # "The" -> "the", and the first "the" wins
    assert np.array_equal(mat[3], vectors[1])
    assert np.all(mat[0] == 0)
    oov = mat[[1, 4, *range(5, 205)]]
    bound = np.sqrt(3 / 4)
    assert np.all(np.abs(oov) <= bound) and oov.max() > 0.8 * bound and oov.min() < -0.8 * bound
    cased, found = embedding_matrix(vocab, words, vectors, 4, np.random.default_rng(0), lower=False)
    assert found == 1 and not np.array_equal(cased[2], vectors[0])
    with pytest.raises(ValueError, match="wants 3 dimensions"):
        embedding_matrix(vocab, words, vectors, 3, np.random.default_rng(0))


def test_glove_text_reader(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("the 0.1 0.2 0.3\ncat -1 2e-1 3\nat name@domain.com 1 2 3\n")
    words, vec = load_glove(p)
    assert words == ["the", "cat", "at name@domain.com"]  # a word with a space, as in GloVe 840B
    assert vec.dtype == np.float32 and vec.shape == (3, 3)
    assert np.allclose(vec[1], [-1, 0.2, 3])


@pytest.mark.parametrize(
    "content,line,fault",
    [
        ("the 0.1 0.2\ncat 0.3\n", 2, "vector has 1 dimensions, earlier lines have 2"),
        ("the 0.1 0.2\ncat 0.3 0.4 0.5 0.6\n", 2, "vector has 4 dimensions"),
        ("the 0.1 zero\n", 1, "not a number"),
        ("the 0.1 0.2\n\ncat 0.3 0.4\n", 2, "expected a word followed by its vector"),
        ("the 0.1 nan\n", 1, "not finite"),
        ("400000 50\nthe 0.1\n", 1, "word2vec-style header"),
        ("the\t0.1 0.2\n", 1, "holds a tab"),
    ],
)
def test_glove_text_errors_name_line(tmp_path, content, line, fault):
    p = tmp_path / "g.txt"
    p.write_text(content)
    with pytest.raises(DataError, match=fault) as e:
        load_glove(p)
    assert str(e.value).startswith(f"{p}:{line}: ")


def test_glove_text_bad_utf8_line_is_exact(tmp_path):
    p = tmp_path / "g.txt"
    p.write_bytes(b"w 0.5 0.5\n" * 3000 + b"caf\xe9 0.1 0.2\n")
    with pytest.raises(DataError, match=r"g.txt:3001: not valid UTF-8"):
        load_glove(p)


def _npy_dir(tmp, words, vectors, column="index"):
    tmp.mkdir()
    np.save(tmp / "emb.npy", vectors)
    pq.write_table(pa.table({column: pa.array(words, pa.string())}), tmp / "index.parquet")
    return tmp


def test_npy_parquet_dir(tmp_path):
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    words, vec = load_glove(_npy_dir(tmp_path / "ok", ["the", ",", "cat"], vectors))
    assert words == ["the", ",", "cat"] and np.array_equal(vec, vectors)
    with pytest.raises(DataError, match="3 words"):
        load_glove(_npy_dir(tmp_path / "short", ["the", ",", "cat"], vectors[:2]))
    with pytest.raises(DataError, match="row 1: word is None"):
        load_glove(_npy_dir(tmp_path / "null", ["the", None, "cat"], vectors))
    with pytest.raises(DataError, match="exactly one embeddings .npy"):
        load_glove(tmp_path)
