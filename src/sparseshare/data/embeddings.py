"""Pretrained word vectors: GloVe text files of any dimension, or the npy + parquet-index layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparseshare.errors import DataError


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse(path: Path, lineno: int, raw: bytes, dim: int | None) -> tuple[str, np.ndarray]:
    try:
        line = raw.decode("utf-8").rstrip("\r\n").rstrip(" ")
    except UnicodeDecodeError:
        raise DataError(path, lineno, "not valid UTF-8 text") from None
    if "\t" in line:
        raise DataError(path, lineno, "holds a tab; GloVe text separates fields with single spaces")
    parts = line.split(" ")
    if dim is not None and len(parts) > dim + 1 and not _is_number(parts[1]):
        parts = [" ".join(parts[:-dim]), *parts[-dim:]]  # GloVe 840B has words with spaces
    if len(parts) < 2 or not parts[0]:
        raise DataError(path, lineno, "expected a word followed by its vector")
    if dim is not None and len(parts) != dim + 1:
        raise DataError(path, lineno, f"vector has {len(parts) - 1} dimensions, earlier lines have {dim}")
    try:
        vec = np.array(parts[1:], dtype=np.float32)
    except ValueError:
        raise DataError(path, lineno, "vector holds a value that is not a number") from None
    if not np.isfinite(vec).all():
        raise DataError(path, lineno, "vector holds a value that is not finite")
    return parts[0], vec


def _load_text(path: Path) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with path.open("rb") as f:  # line by line in bytes, so an encoding error has its exact line
        for lineno, raw in enumerate(f, start=1):
            word, vec = _parse(path, lineno, raw, dim)
            if dim is None and len(vec) == 1 and word.isdigit() and float(vec[0]).is_integer():
                raise DataError(path, lineno, "a word2vec-style header ('count dim'); GloVe text has none")
            dim = len(vec)
            words.append(word)
            rows.append(vec)
    if not words:
        raise DataError(path, None, "empty embeddings file")
    return words, np.stack(rows)


def _load_npy_dir(path: Path) -> tuple[list[str], np.ndarray]:
    npy, idx = sorted(path.glob("*.npy")), sorted(path.glob("*.parquet"))
    if len(npy) != 1 or len(idx) != 1:
        raise DataError(path, None, "expected exactly one embeddings .npy and one .parquet word index")
    import pyarrow.parquet as pq

    table = pq.read_table(idx[0])
    if "index" in table.column_names:
        column = table.column("index")
    elif table.num_columns == 1:
        column = table.column(0)
    else:
        raise DataError(idx[0], None, f"no 'index' column among {table.column_names}")
    words = column.to_pylist()
    if any(not isinstance(w, str) for w in words):
        bad = next(i for i, w in enumerate(words) if not isinstance(w, str))
        raise DataError(idx[0], None, f"row {bad}: word is {words[bad]!r}, not a string")
    vectors = np.load(npy[0], mmap_mode="r")
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or vectors.dtype.kind != "f":
        raise DataError(
            npy[0], None, f"{vectors.dtype} array {vectors.shape} does not match {len(words)} words"
        )
    return words, vectors


def embedding_dim(path: str | Path) -> int:
    """The vectors' dimension, read without loading them: a text file's first line, or the npy header."""
    path = Path(path)
    if path.is_dir():
        npy = sorted(path.glob("*.npy"))
        if len(npy) != 1:
            raise DataError(path, None, "expected exactly one embeddings .npy and one .parquet word index")
        shape = np.load(npy[0], mmap_mode="r").shape
        if len(shape) != 2:
            raise DataError(npy[0], None, f"an array of shape {shape}, not (words, dim)")
        return int(shape[1])
    if not path.exists():
        raise DataError(path, None, "no such embeddings file")
    with path.open("rb") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(path, None, "empty embeddings file")
    return len(_parse(path, 1, first, None)[1])


def load_glove(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(words, vectors [n, dim]) from a GloVe text file or a folder with the npy + parquet index.

    The folder's array is memory-mapped read-only; copy rows out (``embedding_matrix`` does).
    """
    path = Path(path)
    if path.is_dir():
        return _load_npy_dir(path)
    if not path.exists():
        raise DataError(path, None, "no such embeddings file")
    return _load_text(path)


def embedding_matrix(
    vocab: list[str],
    words: list[str],
    vectors: np.ndarray,
    dim: int,
    rng: np.random.Generator,
    lower: bool = True,
) -> tuple[np.ndarray, int]:
    """(rows for ``vocab`` [len(vocab), dim] float32, how many were found).

    A found word (lower-cased lookup, as the paper with the lower-case GloVe 6B) gets its vector, others
    uniform(-sqrt(3/dim), sqrt(3/dim)) (Ma and Hovy 2016); row 0 (padding) is zero. Where a word occurs
    twice in ``words`` the first vector wins.
    """
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"vectors have shape {vectors.shape}, the model wants {dim} dimensions")
    scale = np.sqrt(3.0 / dim)
    out = rng.uniform(-scale, scale, size=(len(vocab), dim)).astype(np.float32)
    out[0] = 0.0
    index: dict[str, int] = {}
    for j, w in enumerate(words):
        index.setdefault(w, j)
    rows, hits = [], []
    for i, w in enumerate(vocab[1:], start=1):
        j = index.get(w.lower() if lower else w)
        if j is not None:
            rows.append(i)
            hits.append(j)
    if rows:
        out[rows] = vectors[np.asarray(hits)]
    return out, len(rows)
