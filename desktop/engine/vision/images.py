"""Images for vision models: check, scale down, hash, and keep them by content hash. Runs in any process (the
engine decodes what a Generate names; the CLI, the GUI's workers and ``serve`` check and store what comes in).

Every image is looked at through its header first (Pillow's ``Image.open`` reads only the header), so a file
that is not an image, or one of 20,000 x 20,000 pixels, is refused before a bitmap is decoded. A truncated file
fails while decoding, also as an :class:`ImageError`. Nothing here changes the file it was given.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from desktop.engine.errors import ImageError

#: Largest file read at all, and the most pixels decoded (8,000 x 6,250: any phone photo; a 20,000 x 20,000
#: picture would take 1.6 GB as RGBA).
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000
#: The longest side handed to a projector that tiles or takes any size (fixed-size ones get their own size).
DEFAULT_MAX_SIDE = 2048
_DATA_URL = re.compile(r"^data:(?P<mime>image/[A-Za-z0-9.+-]+)?(?P<b64>;base64)?,(?P<data>.*)$", re.S)


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says."""

    format: str  # Pillow's name: "PNG", "JPEG", "WEBP", ...
    width: int
    height: int
    n_bytes: int


@dataclass(frozen=True)
class PreparedImage:
    """An image decoded to RGB, scaled down to at most ``max_side`` (and ``MAX_PIXELS``)."""

    sha256: str  # of the original bytes: the same picture hashes the same however it was scaled
    width: int
    height: int
    rgb: bytes  # width * height * 3 bytes, row by row
    source_size: tuple[int, int]


def _pil():  # noqa: ANN202 - Pillow is a dependency, imported on first use (the GUI starts without it)
    from PIL import Image

    return Image


def inspect_bytes(data: bytes, name: str = "the image") -> ImageInfo:
    """The header of ``data``; ImageError when it is not an image or too large to decode."""
    Image = _pil()
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{name} is {len(data) / 2**20:.0f} MiB; images of up to "
                         f"{MAX_IMAGE_BYTES // 2**20} MiB are taken")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = str(im.format or "?"), im.size
    except Image.DecompressionBombError as exc:  # Pillow's own header check, past ~179 megapixels
        raise ImageError(f"{name} is larger than the {MAX_PIXELS // 1_000_000} megapixels this app decodes: "
                         "scale it down first", details=str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - UnidentifiedImageError, SyntaxError, struct errors, ...
        raise ImageError(f"{name} is not an image this app can read (PNG, JPEG, WebP, GIF, BMP)",
                         details=str(exc)) from exc
    if w <= 0 or h <= 0:
        raise ImageError(f"{name} has no pixels ({w} x {h})")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w:,} x {h:,} pixels; the most this app decodes is "
                         f"{MAX_PIXELS // 1_000_000} megapixels: scale it down first")
    return ImageInfo(fmt, w, h, len(data))


def read_image_file(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageError(f"cannot read image {p}: {exc.strerror or exc}") from exc
    if size > MAX_IMAGE_BYTES:
        raise ImageError(f"{p.name} is {size / 2**20:.0f} MiB; images of up to {MAX_IMAGE_BYTES // 2**20} MiB "
                         "are taken")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {p}: {exc.strerror or exc}") from exc


def check_image_file(path: str | os.PathLike[str]) -> ImageInfo:
    """The header of the file at ``path`` (for the CLI and the GUI, before a request is sent)."""
    return inspect_bytes(read_image_file(path), Path(path).name)


def fit_size(width: int, height: int, max_side: int, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The size of (width, height) scaled down, aspect kept, so the longest side is at most ``max_side`` and the
    area at most ``max_pixels``; never scaled up."""
    scale = min(1.0, max_side / max(width, height), (max_pixels / (width * height)) ** 0.5)
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare(data: bytes, max_side: int = DEFAULT_MAX_SIDE, name: str = "the image") -> PreparedImage:
    """Decode ``data`` to RGB at most ``max_side`` on its longest side. EXIF rotation is applied; transparency is
    put on white. ImageError for anything that is not a whole, readable image."""
    Image = _pil()
    from PIL import ImageOps

    info = inspect_bytes(data, name)
    target = fit_size(info.width, info.height, max_side)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG" and target != im.size:
                im.draft("RGB", target)  # decode a big JPEG at 1/2, 1/4 or 1/8 scale: no full-size bitmap
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB")
            if im.size != target:
                im = im.resize(fit_size(im.width, im.height, max_side), Image.Resampling.BICUBIC)
            rgb = im.tobytes()
            size = im.size
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated data raises OSError; odd files raise anything
        raise ImageError(f"{name} could not be decoded (is the file cut short?)", details=str(exc)) from exc
    return PreparedImage(hashlib.sha256(data).hexdigest(), size[0], size[1], rgb, (info.width, info.height))


def decode_data_url(url: str, name: str = "the image") -> bytes:
    """The bytes of an OpenAI ``image_url`` data URL (``data:image/png;base64,...``), checked to be an image.

    Remote (http/https) URLs are refused: the app fetches nothing on a model's or a client's behalf.
    """
    if not isinstance(url, str) or not url:
        raise ImageError(f"{name}: image_url needs a url")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise ImageError(f"{name}: remote image URLs are not fetched; send the image as a data URL "
                         "(data:image/png;base64,...)")
    m = _DATA_URL.match(url)
    if not m or not m.group("b64"):
        raise ImageError(f"{name}: image_url must be a base64 data URL (data:image/png;base64,...)")
    if len(m.group("data")) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ImageError(f"{name} is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
    try:
        data = base64.b64decode(m.group("data"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"{name}: the data URL is not valid base64", details=str(exc)) from exc
    inspect_bytes(data, name)
    return data


def to_data_url(data: bytes) -> str:
    """A data URL for ``data`` (remote backends send images this way)."""
    fmt = inspect_bytes(data).format.lower()
    mime = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(fmt)
    if mime is None:  # re-encode what servers may not read
        Image = _pil()
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def store(data: bytes, directory: str | os.PathLike[str] | None = None) -> Path:
    """Keep ``data`` (checked to be an image) in the app's data directory by content hash and return its path;
    the same picture is stored once. Saved chats and ``serve`` hand the engine these paths."""
    info = inspect_bytes(data)
    if directory is None:
        from desktop.engine import paths

        directory = paths.data_dir() / "images"
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ext = {"JPEG": "jpg"}.get(info.format, info.format.lower())
    target = d / f"{hashlib.sha256(data).hexdigest()}.{ext}"
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target
