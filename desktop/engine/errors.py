"""The one error hierarchy of the app.

Every failure a user can cause or meet is an :class:`AppError` subclass with a message that is a
complete sentence. Third-party exceptions are translated at the boundary with ``raise ... from exc``,
so the CLI can print one ``error:`` line and the GUI's presenter can show one sentence with details.
Runs anywhere (no thread or process affinity).
"""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error that is shown to a user."""

    #: a stable machine-readable code, used by the protocol and the JSON outputs
    code: str = "app_error"

    def __init__(self, message: str, *, details: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            # A finer reason than the class gives (e.g. DownloadError "hub_gated" vs "hub_not_found").
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "type": type(self).__name__, "message": self.message, "details": self.details}


class ProfileError(AppError):
    """A profile file is missing, unparsable or invalid. The message names the file and the key."""

    code = "profile_error"


class UnknownProfileError(ProfileError):
    code = "unknown_profile"


class GGUFError(AppError):
    """A file is not a readable GGUF (missing, not GGUF, truncated, corrupt)."""

    code = "gguf_error"


class FixError(GGUFError):
    """A metadata repair could not be applied; the original bytes are left untouched."""

    code = "fix_error"


class TemplateError(AppError):
    """A chat template failed to render, or tried something the sandbox forbids."""

    code = "template_error"


class FormatUnknownError(TemplateError):
    """A file has no chat template and its family cannot be told from its metadata: the user must choose.

    ``choices`` lists the prompt formats to offer (it also travels in ``details``, one per line).
    """

    code = "format_unknown"

    def __init__(self, message: str, *, choices: tuple[str, ...] | list[str] = (), details: str | None = None,
                 code: str | None = None) -> None:
        if not choices and details:
            choices = [c for c in details.splitlines() if c]
        super().__init__(message, details=details if details is not None else "\n".join(choices), code=code)
        self.choices = tuple(choices)


class ModelLoadError(AppError):
    """llama.cpp could not load a model file."""

    code = "model_load_error"


class ProjectorMismatchError(ModelLoadError):
    """A multimodal projector that does not belong to the model (another embedding size, no vision encoder)."""

    code = "projector_mismatch"


class ContextTooLargeError(ModelLoadError):
    """The requested context cannot fit in this machine's memory; the message carries the numbers."""

    code = "context_too_large"


class ContextOverflowError(AppError):
    """Even the newest message alone does not fit in the context window."""

    code = "context_overflow"


class NoRoomForAttachmentsError(ContextOverflowError):
    """The context leaves too little room for a message's attached files (``chats.attachments.fit_attachments``);
    the message carries the numbers."""

    code = "attachments_no_room"


class GenerationError(AppError):
    """Generation failed inside llama.cpp."""

    code = "generation_error"


class GrammarError(GenerationError):
    """A JSON schema or GBNF grammar that llama.cpp cannot turn into a grammar sampler."""

    code = "invalid_grammar"


class ImageError(AppError):
    """An image cannot be used: not an image, cut short, too large, or sent to a model without vision."""

    code = "image_error"


class EngineCrashedError(AppError):
    """The engine process died (native crash, OOM kill, SIGKILL)."""

    code = "engine_crashed"


class ModelNotFoundError(AppError):
    """A profile's model file is not installed."""

    code = "model_not_found"


class DownloadError(AppError):
    code = "download_error"


class DownloadCancelled(DownloadError):
    """The user paused or cancelled; the partial file stays for a later resume (unless cancelled)."""

    code = "cancelled"


class VerificationError(DownloadError):
    """A finished file does not match the Hub's hash; it was deleted and not registered."""

    code = "verify_failed"


class DiskSpaceError(DownloadError):
    code = "disk_space"


class RemoteError(AppError):
    """An OpenAI-compatible server could not be used. The subclasses say why, in one sentence."""

    code = "remote_error"


class RemoteConnectionError(RemoteError):
    """Nothing answers at the base URL (refused, unknown host, unreachable network)."""

    code = "remote_unreachable"


class RemoteTimeoutError(RemoteError):
    code = "remote_timeout"


class RemoteAuthError(RemoteError):
    """The server rejected the request (401/403): no key, or the wrong one."""

    code = "remote_auth"


class RemoteModelError(RemoteError):
    """The server does not serve the profile's model; the message lists what it has."""

    code = "remote_model_not_found"


class RemoteStreamError(RemoteError):
    """The answer stream ended before the server finished it; the text streamed so far is kept."""

    code = "remote_stream_cut"


_BY_CODE: dict[str, type[AppError]] = {}


def _register(cls: type[AppError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(AppError)


def from_dict(data: dict[str, Any]) -> AppError:
    """Rebuild an error sent across the process boundary (see ``protocol``)."""
    cls = _BY_CODE.get(str(data.get("code")), AppError)
    return cls(str(data.get("message", "unknown error")), details=data.get("details"))
