"""Pretrained word vectors: GloVe text files of any dimension, or the npy + parquet-index layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparseshare.errors import DataError


def _load_text(path: Path) -> tuple[list[str], np.ndarray]:
    words, rows, dim = [], [], None
    with path.open("r", encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\n").rstrip().split(" ")
                if len(parts) < 2:
                    raise DataError(path, lineno, "expected a word followed by its vector")
                try:
                    vec = [float(x) for x in parts[1:]]
                except ValueError:
                    raise DataError(path, lineno, "vector holds a value that is not a number") from None
                if dim is None:
                    dim = len(vec)
                elif len(vec) != dim:
                    raise DataError(
                        path, lineno, f"vector has {len(vec)} dimensions, earlier lines have {dim}"
                    )
                words.append(parts[0])
                rows.append(vec)
        except UnicodeDecodeError:
            raise DataError(path, lineno + 1, "not valid UTF-8 text") from None
    if not words:
        raise DataError(path, None, "empty embeddings file")
    return words, np.asarray(rows, dtype=np.float32)


def load_glove(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(words, vectors [n, dim]) from a GloVe text file or a folder with the npy + parquet index."""
    path = Path(path)
    if path.is_dir():
        npy = sorted(path.glob("*.npy"))
        idx = sorted(path.glob("*.parquet"))
        if not npy or not idx:
            raise DataError(path, None, "expected an embeddings .npy and a .parquet word index")
        import pyarrow.parquet as pq

        table = pq.read_table(idx[0])
        words = [str(w) for w in table.column(0).to_pylist()]
        vectors = np.load(npy[0], mmap_mode="r")
        if vectors.shape[0] != len(words):
            raise DataError(
                npy[0], None, f"{vectors.shape[0]} vectors but {len(words)} words in {idx[0].name}"
            )
        return words, vectors
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
    """Rows for ``vocab``: the pretrained vector where found (lower-cased lookup, as the paper), else
    uniform(-sqrt(3/dim), sqrt(3/dim)) (Ma and Hovy 2016); row 0 (padding) is zero."""
    if vectors.shape[1] != dim:
        raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the model wants {dim}")
    scale = np.sqrt(3.0 / dim)
    out = rng.uniform(-scale, scale, size=(len(vocab), dim)).astype(np.float32)
    out[0] = 0.0
    index = {w: i for i, w in enumerate(words)}
    found = 0
    for i, w in enumerate(vocab):
        if i == 0:
            continue
        j = index.get(w.lower() if lower else w)
        if j is not None:
            out[i] = vectors[j]
            found += 1
    return out, found
