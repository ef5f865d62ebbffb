"""Where each file of a download goes: the app's library (``<download dir>/owner/repo/<file>``), with a
resumable ``<file>.incomplete`` and its sidecar ``<file>.incomplete.json`` (the expected sha256, size and
etag, and per-chunk progress for parallel connections). A copy already in the shared HF cache is noted so
it can be used where it is, read-only. Names from the Hub are untrusted: anything that would leave the
repo's folder is refused. Runs in the caller's process (the CLI, or the app's GUI process) on the download's
thread (the CLI's main thread, or the download queue's worker thread); no Qt, no llama_cpp.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.errors import DownloadError, UnknownProfileError
from desktop.engine.hub import listing as hub

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def resolve_spec(spec: str, store: Any) -> tuple[str, Any]:
    """``spec`` is a profile id or a repo id; returns (repo, profile or None)."""
    try:
        prof = store.get(spec)
    except UnknownProfileError:
        if "/" not in spec:
            raise
        linked = [p for p in store.all() if p.source.repo and p.source.repo.lower() == spec.lower()]
        return spec, (linked[0] if linked else None)
    if not prof.source.repo:
        raise DownloadError(f"profile {prof.id!r} has no Hub repo to download from", code="no_repo")
    return prof.source.repo, prof


@dataclass
class FileTarget:
    name: str  # the path inside the repo
    size: int
    sha256: str | None
    etag: str
    url: str
    final: Path  # the verified file in the library
    cached: Path | None = None  # the shared HF cache's copy, if another tool fetched it (never written)

    @property
    def incomplete(self) -> Path:
        return self.final.with_name(self.final.name + ".incomplete")

    @property
    def sidecar(self) -> Path:
        return self.final.with_name(self.final.name + ".incomplete.json")

    def have(self) -> bool:
        return self.final.is_file()


def expected_hash(t: FileTarget) -> tuple[str, str] | None:
    if t.sha256:
        return "sha256", t.sha256.lower()
    if len(t.etag) == 64:
        return "sha256", t.etag.lower()
    if len(t.etag) == 40:
        # Small files outside LFS: the etag is git's blob id, sha1("blob <size>\0" + content).
        return "gitsha1", t.etag.lower()
    return None


def repo_dir(base: Path, repo: str) -> Path:
    """``base/owner/repo``; a repo id that is not ``owner/name`` of plain characters is refused."""
    if not _REPO_RE.match(repo) or ".." in repo:
        raise DownloadError(f"refusing the repo id {repo!r}: expected owner/name", code="hostile_name")
    return base / repo


def library_file(base: Path, repo: str, name: str) -> Path:
    if hub.safe_relpath(name) is None:
        raise DownloadError(f"refusing the file name {name!r}: it would escape the download directory",
                            code="hostile_name")
    root = repo_dir(base, repo)
    out = root / name
    if os.path.commonpath([os.path.abspath(root), os.path.abspath(out)]) != os.path.abspath(root):
        raise DownloadError(f"refusing the file name {name!r}: it would escape the download directory",
                            code="hostile_name")
    return out


# ------------------------------------------------------------------------------------------ the sidecar


def read_sidecar(t: FileTarget) -> dict[str, Any] | None:
    try:
        d = json.loads(t.sidecar.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def write_sidecar(t: FileTarget, **state: Any) -> None:
    """The expected identity of the partial file plus ``state`` (mode, chunks), replaced atomically."""
    d = {"sha256": t.sha256, "size": t.size, "etag": t.etag, **state}
    tmp = t.sidecar.with_name(f"{t.sidecar.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(d))
    tmp.replace(t.sidecar)


def drop_partial(t: FileTarget) -> None:
    t.incomplete.unlink(missing_ok=True)
    t.sidecar.unlink(missing_ok=True)


def check_partial(t: FileTarget) -> dict[str, Any] | None:
    """The sidecar of a partial file that belongs to this target; a partial of another version of the file
    (the Hub's copy changed) is deleted. None when there is no usable sidecar."""
    side = read_sidecar(t)
    if side is not None and (side.get("size") != t.size or side.get("etag") != t.etag
                             or (side.get("sha256") or None) != (t.sha256 or None)):
        drop_partial(t)
        return None
    if side is None and t.sidecar.exists():
        t.sidecar.unlink(missing_ok=True)
    return side


def partial_bytes(t: FileTarget) -> int:
    """Bytes of the file already on disk in the partial (a parallel partial is preallocated: count chunks)."""
    if not t.incomplete.exists():
        return 0
    side = read_sidecar(t) or {}
    if side.get("mode") == "parallel":
        return sum(int(c[2]) for c in side.get("chunks") or [])
    return t.incomplete.stat().st_size


# ------------------------------------------------------------------------------------------ targets


def _cache_copy(repo: str, commit: str, name: str, etag: str) -> Path | None:
    """The HF cache's verified-by-name copy: the snapshot link of this commit, or the blob of this etag."""
    from huggingface_hub.file_download import repo_folder_name

    storage = paths.hf_hub_cache() / repo_folder_name(repo_id=repo, repo_type="model")
    snap = storage / "snapshots" / commit / name
    blob = storage / "blobs" / etag
    for p in (snap, blob):
        if p.is_file():
            return p
    snaps = storage / "snapshots"
    if blob.is_file() and snaps.is_dir():  # another revision's snapshot linking the same blob
        for cand in snaps.glob(f"*/{name}"):
            if cand.is_file() and os.path.realpath(cand) == os.path.realpath(blob):
                return cand
    return None


def build_targets(repo: str, commit: str, entry: hub.QuantEntry, base: Path) -> list[FileTarget]:
    """One target per file of ``entry``, with the Hub's size and etag (HEAD, redirects followed)."""
    from huggingface_hub import get_hf_file_metadata

    out = []
    for name, sha in zip(entry.files, entry.sha256):
        final = library_file(base, repo, name)  # refuses hostile names before any request
        url = hub.resolve_url(repo, name, commit)
        try:
            meta = get_hf_file_metadata(url, token=hub.token(), timeout=30, endpoint=paths.hf_endpoint(),
                                        library_name="desktop-chat")
        except Exception as exc:  # noqa: BLE001
            raise hub.translate(exc, repo, name) from exc
        etag = (meta.etag or sha or "").strip('"')
        if not etag or "/" in etag or etag.startswith("."):
            raise DownloadError(f"the Hub sent no usable ETag for {name}", code="hub_error")
        size = int(meta.size or 0) or entry.sizes[entry.files.index(name)]
        if size <= 0:
            raise DownloadError(f"the Hub sent no size for {name}", code="hub_error")
        out.append(FileTarget(name, size, sha, etag, meta.location or url, final,
                              _cache_copy(repo, meta.commit_hash or commit, name, etag)))
    return out
