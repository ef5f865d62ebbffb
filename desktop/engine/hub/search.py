"""Search the Hub for GGUF repositories: ``HfApi.list_models`` with the numbers a picker shows.

Goes through huggingface_hub (HF_ENDPOINT, HF_TOKEN, ``hf auth login`` and HF_HUB_OFFLINE behave as users expect).
Errors become one sentence through ``listing.translate``; being offline (HF_HUB_OFFLINE=1, or the endpoint cannot
be reached at all) is its own error, :class:`HubOfflineError`, so a view can offer the local alternatives (import
a GGUF from disk) instead of a generic failure. Plain Python; runs in the caller's process (the CLI, or a worker
thread of the app's GUI process), any thread.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from desktop.engine import paths
from desktop.engine.errors import AppError, DownloadError
from desktop.engine.hub import listing

# What a result row shows; intersected with what the installed huggingface_hub accepts (see _expand).
WANTED_EXPAND = ("downloads", "likes", "lastModified", "gated", "gguf", "safetensors")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
MAX_LIMIT = 100
# huggingface_hub retries a refused connection five times with backoff (~23 s) before giving up: right for
# a download, far too long to tell a user typing in a search box that they are offline. One plain request
# with a short timeout answers that first; a reachable endpoint is not asked again for a minute.
PROBE_TIMEOUT_S = 5.0
PROBE_TTL_S = 60.0
_reachable: dict[str, float] = {}
_reachable_lock = threading.Lock()


class HubOfflineError(DownloadError):
    """The Hub cannot be reached: offline mode is on, or nothing answers at the endpoint."""

    code = "hub_offline"


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    downloads: int = 0
    likes: int = 0
    last_modified: str | None = None  # ISO 8601, UTC
    params: int | None = None  # parameter count, from the GGUF or safetensors metadata the Hub computed
    gated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expand() -> list[str]:
    """The fields of WANTED_EXPAND this huggingface_hub version knows (it rejects unknown ones)."""
    try:
        from typing import get_args

        from huggingface_hub.hf_api import ExpandModelProperty_T

        known = set(get_args(ExpandModelProperty_T))
    except ImportError:  # pragma: no cover - a version without the Literal: ask for the basics only
        known = {"downloads", "likes", "lastModified"}
    return [f for f in WANTED_EXPAND if f in known]


def _params(info: Any) -> int | None:
    gguf = getattr(info, "gguf", None)
    if isinstance(gguf, dict) and gguf.get("total"):
        return int(gguf["total"])
    st = getattr(info, "safetensors", None)
    total = getattr(st, "total", None) if st is not None else None
    return int(total) if total else None


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if value else None


def summary(info: Any) -> RepoSummary:
    """A RepoSummary from a huggingface_hub ``ModelInfo``."""
    return RepoSummary(str(info.id), int(getattr(info, "downloads", 0) or 0), int(getattr(info, "likes", 0) or 0),
                       _iso(getattr(info, "last_modified", None)), _params(info),
                       bool(getattr(info, "gated", False)))


def _offline(exc: AppError) -> AppError:
    if exc.code in {"hub_offline", "network"}:
        return HubOfflineError(exc.message, details=exc.details)
    return exc


def _probe(endpoint: str) -> None:
    """Raise HubOfflineError at once if nothing answers at ``endpoint`` (any HTTP answer will do)."""
    with _reachable_lock:
        if time.monotonic() - _reachable.get(endpoint, -PROBE_TTL_S) < PROBE_TTL_S:
            return
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception as exc:  # noqa: BLE001 - any transport failure means "cannot reach"
        err = listing.translate(exc, endpoint)
        if err.code in {"network", "hub_error"}:
            raise HubOfflineError(f"cannot reach {endpoint} ({type(exc).__name__}); check the network and try "
                                  f"again, or import a GGUF from disk", details=str(exc)) from exc
        raise err from exc
    with _reachable_lock:
        _reachable[endpoint] = time.monotonic()


def search(query: str, *, limit: int = 30) -> list[RepoSummary]:
    """GGUF repos matching ``query``, most downloaded first. Network; any thread."""
    from huggingface_hub import HfApi

    listing.sync_hf_env()
    if paths.hf_offline():
        raise HubOfflineError("offline mode is on (HF_HUB_OFFLINE=1): unset it to search the Hub, "
                              "or import a GGUF from disk")
    limit = max(1, min(int(limit), MAX_LIMIT))
    _probe(paths.hf_endpoint())
    api = HfApi(endpoint=paths.hf_endpoint(), library_name="desktop-chat")
    try:
        found = api.list_models(search=query.strip() or None, filter="gguf", sort="downloads", limit=limit,
                                expand=_expand(), token=listing.token())  # type: ignore[arg-type]
        rows = [summary(m) for m in found]
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise _offline(listing.translate(exc, f"the search {query.strip()!r}")) from exc
    # The Hub sorts already; sorting again keeps the promise for servers (mirrors) that do not.
    rows.sort(key=lambda r: r.downloads, reverse=True)
    return rows


def repo_id_from_text(text: str) -> str | None:
    """``owner/name`` if ``text`` is a repo id or a Hub URL of a repo (any /tree, /blob, /resolve suffix)."""
    text = text.strip()
    if not text:
        return None
    if "://" in text or text.startswith(("huggingface.co/", "hf.co/")):
        url = urlparse(text if "://" in text else "https://" + text)
        hosts = {"huggingface.co", "www.huggingface.co", "hf.co", urlparse(paths.hf_endpoint()).netloc}
        if url.netloc.lower() not in hosts:
            return None
        parts = [p for p in url.path.split("/") if p]
        if parts and parts[0] in {"models"}:
            parts = parts[1:]
        if len(parts) < 2 or parts[0] in {"datasets", "spaces", "api"}:
            return None
        text = f"{parts[0]}/{parts[1]}"
    return text if REPO_ID_RE.match(text) and ".." not in text else None
