"""The Hugging Face Hub side of model management: list a repo's quants, read a remote GGUF header,
and turn huggingface_hub's errors into sentences that say what to do.

Everything goes through huggingface_hub (its API client, its auth, its HTTP session), so HF_ENDPOINT,
HF_TOKEN, the token saved by `hf auth login` and HF_HUB_OFFLINE behave as users expect. Runs in the caller's
process (the CLI, or the app's GUI process) on the caller's thread (the CLI's main thread, or a worker thread:
the download queue's, or the one that lists a repo for the Hub page); no Qt, no llama_cpp.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from desktop.engine import paths
from desktop.engine.gguf import header as gguf_header
from desktop.engine.errors import AppError, DownloadError

# "-00001-of-00003.gguf": llama.cpp's gguf-split shards, loaded by pointing at the first one.
SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<idx>\d{5})-of-(?P<n>\d{5})\.gguf$", re.I)
# ".gguf.part1of2": byte-split parts (mradermacher, for files over the hub's 50 GB limit), concatenated.
PART_RE = re.compile(r"^(?P<base>.+\.gguf)\.part(?P<idx>\d+)of(?P<n>\d+)$", re.I)
QUANT_RE = re.compile(
    r"(?:^|[._\-])(?P<q>(?:I?Q[1-8](?:_[0-9A-Z]+)*)|MXFP4|BF16|F16|FP16|F32)(?=[._\-]|$)", re.I)
HEADER_PREFIX_BYTES = 4 * 1024 * 1024
HEADER_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # the LFS sha256; None for small non-LFS files (git blob id only)


@dataclass
class QuantEntry:
    """One downloadable model: a single GGUF, a set of gguf-split shards, or byte-split parts."""

    quant: str
    files: list[str]
    size: int
    sha256: list[str | None]
    sizes: list[int] = field(default_factory=list)
    split: str | None = None  # None | "shards" | "parts"
    complete: bool = True
    fit: dict[str, Any] | None = None
    # A vision model's projector (mmproj-*.gguf of the same repo), downloaded with it: shown as "vision".
    mmproj: str | None = None
    mmproj_size: int = 0
    mmproj_sha256: str | None = None

    @property
    def vision(self) -> bool:
        return self.mmproj is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vision"] = self.vision
        return d


@dataclass
class Listing:
    repo: str
    commit: str | None
    files: list[RemoteFile]
    rejected: list[str] = field(default_factory=list)
    gated: Any = False


def sync_hf_env() -> None:
    """Make huggingface_hub see the environment as it is now.

    huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE once at import; the app (and its tests) may set
    them later, e.g. a settings change or a test's loopback server.
    """
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = paths.hf_offline()
    endpoint = paths.hf_endpoint()
    constants.ENDPOINT = endpoint
    constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"


def token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def hf_headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return dict(build_hf_headers(token=token(), library_name="desktop-chat"))


def safe_relpath(name: str) -> str | None:
    """``name`` if it stays inside a target directory when joined to it, else None (hostile listing)."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    norm = posixpath.normpath(name)
    if norm != name or norm.startswith("..") or "/../" in f"/{norm}/":
        return None
    return name


def quant_of(filename: str) -> str:
    base = posixpath.basename(filename)
    for rx in (SHARD_RE, PART_RE):
        m = rx.match(base)
        if m:
            base = m.group("base")
    stem = re.sub(r"\.gguf$", "", base, flags=re.I)
    found = [m.group("q").upper() for m in QUANT_RE.finditer(stem)]
    return found[-1] if found else stem


def _not_found_message(repo: str) -> str:
    return (f"repository {repo!r} was not found on {paths.hf_endpoint()}, or it is private: check the id; "
            f"if it is private, log in with `hf auth login` or set HF_TOKEN")


def translate(exc: BaseException, repo: str, filename: str | None = None) -> AppError:
    """A DownloadError that says what happened and what to do, for a huggingface_hub/httpx error."""
    if isinstance(exc, AppError):
        return exc
    from huggingface_hub import errors as e

    name = type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, e.GatedRepoError):
        return DownloadError(
            f"{repo} is a gated repository: accept its terms at {paths.hf_endpoint()}/{repo} and log in with "
            f"`hf auth login` (or set HF_TOKEN)", code="hub_gated", details=str(exc))
    if isinstance(exc, (e.RemoteEntryNotFoundError, e.EntryNotFoundError)) or (status == 404 and filename):
        return DownloadError(
            f"{filename!r} is not a file of {repo}; list the files with `desktop-chat models quants {repo}`",
            code="hub_file_not_found", details=str(exc))
    if isinstance(exc, e.RevisionNotFoundError):
        return DownloadError(f"revision not found in {repo}", code="hub_revision_not_found", details=str(exc))
    if isinstance(exc, e.RepositoryNotFoundError) or status == 404:
        return DownloadError(_not_found_message(repo), code="hub_not_found", details=str(exc))
    if status == 401:
        return DownloadError(
            f"{paths.hf_endpoint()} refused the credentials for {repo} (401): log in again with `hf auth login` "
            f"or fix HF_TOKEN", code="hub_unauthorized", details=str(exc))
    if status == 403:
        return DownloadError(
            f"access to {repo} is forbidden (403): your token lacks permission; request access at "
            f"{paths.hf_endpoint()}/{repo} or use a token with read access", code="hub_forbidden", details=str(exc))
    if isinstance(exc, e.OfflineModeIsEnabled):
        return DownloadError("offline mode is on (HF_HUB_OFFLINE=1): unset it to reach the Hub",
                             code="hub_offline", details=str(exc))
    if status is not None:
        return DownloadError(f"the Hub answered {status} for {repo}; try again later", code="hub_http",
                             details=str(exc))
    if "Timeout" in name or "Connect" in name or "Network" in name or "Protocol" in name or isinstance(exc, OSError):
        return DownloadError(f"cannot reach {paths.hf_endpoint()} ({name}); check the network and try again",
                             code="network", details=str(exc))
    return DownloadError(f"unexpected error talking to the Hub: {exc}", code="hub_error", details=repr(exc))


def list_files(repo: str, revision: str | None = None) -> Listing:
    """The repo's files with sizes and LFS sha256, from the model info API.

    Always asks for an explicit revision (``/api/models/<repo>/revision/main``): some mirrors (olah) answer
    the bare ``/api/models/<repo>`` with 401. A GGUF listed without a size gets it from a HEAD request.
    """
    from huggingface_hub import HfApi

    sync_hf_env()
    if paths.hf_offline():
        raise DownloadError("offline mode is on (HF_HUB_OFFLINE=1): unset it to list a repo's files",
                            code="hub_offline")
    revision = revision or "main"
    try:
        info = HfApi(endpoint=paths.hf_endpoint(), library_name="desktop-chat").model_info(
            repo, revision=revision, files_metadata=True, token=token())
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise translate(exc, repo) from exc
    files: list[RemoteFile] = []
    rejected: list[str] = []
    for s in info.siblings or []:
        if safe_relpath(s.rfilename) is None:
            rejected.append(s.rfilename)
            continue
        sha = s.lfs.sha256 if s.lfs else None
        size = int(s.size or (s.lfs.size if s.lfs else 0) or 0)
        if not size and _is_gguf(s.rfilename):
            size = head_size(repo, s.rfilename, info.sha or revision)
        files.append(RemoteFile(s.rfilename, size, sha))
    return Listing(repo, info.sha, files, rejected, getattr(info, "gated", False))


def _is_gguf(name: str) -> bool:
    base = posixpath.basename(name)
    return base.lower().endswith(".gguf") or bool(PART_RE.match(base))


def head_size(repo: str, filename: str, revision: str = "main") -> int:
    """A file's size from a HEAD request (X-Linked-Size, else Content-Length), for listings without sizes."""
    from huggingface_hub import get_hf_file_metadata

    try:
        meta = get_hf_file_metadata(resolve_url(repo, filename, revision), token=token(), timeout=30,
                                    endpoint=paths.hf_endpoint(), library_name="desktop-chat")
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, repo, filename) from exc
    return int(meta.size or 0)


def group_quants(files: list[RemoteFile]) -> list[QuantEntry]:
    """GGUF files grouped into downloadable entries, smallest first."""
    singles: list[QuantEntry] = []
    groups: dict[tuple[str, str], list[tuple[int, int, RemoteFile]]] = {}
    for f in files:
        base = posixpath.basename(f.name)
        m = SHARD_RE.match(base) or PART_RE.match(base)
        if m:
            kind = "shards" if SHARD_RE.match(base) else "parts"
            key = (kind, posixpath.join(posixpath.dirname(f.name), m.group("base")))
            groups.setdefault(key, []).append((int(m.group("idx")), int(m.group("n")), f))
        elif base.lower().endswith(".gguf"):
            singles.append(QuantEntry(quant_of(f.name), [f.name], f.size, [f.sha256], [f.size]))
    for (kind, _), members in groups.items():
        members.sort(key=lambda t: t[0])
        n = members[0][1]
        complete = [m[0] for m in members] == list(range(1, n + 1))
        singles.append(QuantEntry(quant_of(members[0][2].name), [m[2].name for m in members],
                                  sum(m[2].size for m in members), [m[2].sha256 for m in members],
                                  [m[2].size for m in members], kind, complete))
    # Projector files (mmproj) are not chat models on their own: each quant is paired with one.
    from desktop.engine.gguf.projector import is_projector_name

    projectors = [f for f in files if is_projector_name(posixpath.basename(f.name))]
    entries = [e for e in singles if not is_projector_name(posixpath.basename(e.files[0]))]
    for e in entries:
        mm = pair_projector(e.files[0], projectors)
        if mm is not None:
            e.mmproj, e.mmproj_size, e.mmproj_sha256 = mm.name, mm.size, mm.sha256
    entries.sort(key=lambda e: (e.size, e.quant))
    return entries


def prefer_projector(entries: list[QuantEntry], files: list[RemoteFile], name: str | None) -> None:
    """Pair every entry with the projector a profile names (``source.mmproj``), when the repo has it."""
    f = next((f for f in files if name and f.name == name), None)
    if f is not None:
        for e in entries:
            e.mmproj, e.mmproj_size, e.mmproj_sha256 = f.name, f.size, f.sha256


_PROJECTOR_PREFERENCE = ("F16", "BF16", "Q8_0", "F32")


def pair_projector(model_file: str, projectors: list[RemoteFile]) -> RemoteFile | None:
    """The projector to download with ``model_file``: one in the same folder (else any), F16 before BF16, Q8_0
    and F32 (llama.cpp's own repos ship F16; the quality loss of a quantized projector is not worth its bytes)."""
    if not projectors:
        return None
    folder = posixpath.dirname(model_file)
    near = [p for p in projectors if posixpath.dirname(p.name) == folder] or projectors

    def rank(p: RemoteFile) -> tuple[int, str]:
        q = quant_of(p.name).upper()
        return (_PROJECTOR_PREFERENCE.index(q) if q in _PROJECTOR_PREFERENCE else len(_PROJECTOR_PREFERENCE), p.name)

    return min(near, key=rank)


def pick(entries: list[QuantEntry], quant: str | None = None, filename: str | None = None) -> QuantEntry:
    if filename:
        for e in entries:
            if filename in e.files:
                return e
        raise DownloadError(f"{filename!r} is not a GGUF in this repo; see `desktop-chat models quants`",
                            code="hub_file_not_found")
    if quant:
        matches = [e for e in entries if e.quant.upper() == quant.upper()]
        if not matches:
            have = ", ".join(sorted({e.quant for e in entries})) or "none"
            raise DownloadError(f"no {quant} quant in this repo (it has: {have})", code="quant_not_found")
        return matches[0]
    raise DownloadError("say which quant (--quant) or file (--file) to download", code="quant_not_given")


def resolve_url(repo: str, filename: str, revision: str = "main") -> str:
    return f"{paths.hf_endpoint()}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def read_remote_header(repo: str, filename: str, revision: str = "main") -> dict[str, Any]:
    """Architecture numbers from the first MBs of a remote GGUF (ranged GETs, growing as needed).

    The body is streamed and the connection dropped once the prefix is in: a server that ignores Range and
    sends the whole file costs a few MB, never the file.
    """
    from huggingface_hub.utils import get_session

    sync_hf_env()
    size = HEADER_PREFIX_BYTES
    url = resolve_url(repo, filename, revision)
    while True:
        got = bytearray()
        try:
            with get_session().stream("GET", url, headers={**hf_headers(), "Range": f"bytes=0-{size - 1}"},
                                      follow_redirects=True, timeout=30) as r:
                if r.status_code >= 400:
                    r.read()
                    r.raise_for_status()
                for chunk in r.iter_bytes():
                    got += chunk
                    if len(got) >= size:
                        break  # leaving the block closes the connection: the rest is never read
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, repo, filename) from exc
        data = bytes(got[:size])
        # The architecture keys come before the vocabulary in every converter's output, so a few MB
        # usually hold them; grow the range only if they are missing.
        meta = gguf_header.parse_prefix(data)
        numbers = gguf_header.arch_numbers(meta)
        if numbers["layers"] and numbers["head_dim"] or not meta.get("GGUF.truncated"):
            return numbers
        if len(data) < size or size >= HEADER_MAX_BYTES:
            return numbers
        size *= 4
