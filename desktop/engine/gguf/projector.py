"""Multimodal projectors (``mmproj-*.gguf``, ``general.architecture = clip``): what one is, which language model it
fits, where one sits beside a model file, and what it costs in memory. Read through gguf-py like every other
GGUF (``doctor``'s bounded reader); runs on any thread, in any process.

The check that matters before llama.cpp sees the pair: ``mtmd`` refuses a projector whose output width is not
the language model's embedding size, and only says so in its log. :func:`check_pair` says it first, with both
numbers.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop.engine.errors import GGUFError, ProjectorMismatchError
from desktop.engine.gguf import doctor, header

#: Projectors that take one fixed-size square: a bigger picture only costs decoding time.
FIXED_SIZE_TYPES = {"gemma3", "mlp", "mlp_norm", "ldp", "ldpv2", "adapter", "cogvlm", "janus_pro"}
_MMPROJ_NAME = re.compile(r"(^|[-_.])mmproj([-_.]|$)", re.I)
_MM_N = re.compile(r"^mm\.(\d+)\.weight$")


@dataclass(frozen=True)
class ProjectorInfo:
    path: str
    file_size: int
    projector_type: str
    name: str | None
    has_vision: bool
    has_audio: bool
    image_size: int | None
    patch_size: int | None
    n_embd_vision: int | None
    n_layer: int | None
    n_head: int | None
    n_ff: int | None
    n_embd_text: int | None  # the embedding size of the language model it fits
    image_max_pixels: int | None
    file_type: str | None

    @property
    def max_side(self) -> int:
        """The longest side worth handing this projector (images are scaled down to it)."""
        from desktop.engine.vision.images import DEFAULT_MAX_SIDE

        if self.projector_type in FIXED_SIZE_TYPES and self.image_size:
            return int(self.image_size)
        if self.image_max_pixels:
            return max(self.image_size or 0, int(self.image_max_pixels ** 0.5) * 2)
        return DEFAULT_MAX_SIDE

    def compute_bytes(self) -> int:
        """An estimate of the encoder's compute buffer for one image at the largest size it takes: attention
        scores (f32, every head, patches squared) plus a few activations per patch."""
        patch = self.patch_size or 14
        if self.image_max_pixels and self.projector_type not in FIXED_SIZE_TYPES:
            n_patches = max(1, self.image_max_pixels // (patch * patch))
        else:
            side = self.image_size or 448
            n_patches = max(1, (side // patch) ** 2)
        embd, heads, ff = self.n_embd_vision or 1024, self.n_head or 16, self.n_ff or 4096
        return int(n_patches * n_patches * heads * 4 + n_patches * (8 * embd + 2 * ff) * 4)

    def summary(self) -> str:
        size = f"{self.image_size} x {self.image_size}" if self.image_size else "any size"
        fits = f"a language model of embedding size {self.n_embd_text}" if self.n_embd_text else "an unknown model"
        return (f"{self.projector_type} projector ({'vision' if self.has_vision else 'no vision'}"
                f"{', audio' if self.has_audio else ''}), images {size}, fits {fits}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_side"] = self.max_side
        d["compute_bytes"] = self.compute_bytes()
        return d


def is_projector_name(name: str) -> bool:
    """Whether a file name is a projector's by the Hub's convention (``mmproj-*.gguf``, ``*-mmproj-f16.gguf``)."""
    return name.lower().endswith(".gguf") and bool(_MMPROJ_NAME.search(Path(name).name[:-5]))


def is_projector(path: str | Path) -> bool:
    """Whether the file at ``path`` is a projector (its architecture is ``clip``)."""
    try:
        reader = doctor.open_reader(path)
    except GGUFError:
        return False
    return doctor.scalar(reader, "general.architecture") == "clip"


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def inspect(path: str | Path) -> ProjectorInfo:
    """Read a projector's metadata. GGUFError when the file is not a sound GGUF or not a projector."""
    p = Path(path)
    reader = doctor.open_reader(p)

    def key(k: str) -> Any:
        return doctor.scalar(reader, k)

    if key("general.architecture") != "clip":
        raise GGUFError(f"{p.name} is not a multimodal projector (architecture "
                        f"{key('general.architecture') or 'unknown'}, not clip)")
    ptype = key("clip.projector_type") or key("clip.vision.projector_type") or "unknown"
    shapes = {t.name: [int(x) for x in t.shape] for t in reader.tensors}
    n_text: int | None = None
    if "mm.input_projection.weight" in shapes:  # gemma3: ne = [n_embd_text, n_embd_vision]
        n_text = shapes["mm.input_projection.weight"][0]
    elif "mm.model.fc.weight" in shapes:  # idefics3 (SmolVLM)
        n_text = shapes["mm.model.fc.weight"][1]
    else:
        mm = sorted((int(m.group(1)), n) for n in shapes if (m := _MM_N.match(n)))
        if mm:  # llava-style MLP, qwen2vl merger: the last layer's output width
            n_text = shapes[mm[-1][1]][1]
    n_text = n_text or _int(key("clip.vision.projection_dim"))
    return ProjectorInfo(
        path=str(p), file_size=p.stat().st_size, projector_type=str(ptype), name=key("general.name"),
        has_vision=bool(key("clip.has_vision_encoder")), has_audio=bool(key("clip.has_audio_encoder")),
        image_size=_int(key("clip.vision.image_size")), patch_size=_int(key("clip.vision.patch_size")),
        n_embd_vision=_int(key("clip.vision.embedding_length")), n_layer=_int(key("clip.vision.block_count")),
        n_head=_int(key("clip.vision.attention.head_count")), n_ff=_int(key("clip.vision.feed_forward_length")),
        n_embd_text=n_text, image_max_pixels=_int(key("clip.vision.image_max_pixels")),
        file_type=header.file_type_name(key("general.file_type")),
    )


def check_pair(model_path: str | Path, projector: ProjectorInfo | str | Path) -> ProjectorInfo:
    """The projector's info, or ProjectorMismatchError (both numbers) when it was made for another model."""
    info = projector if isinstance(projector, ProjectorInfo) else inspect(projector)
    if not info.has_vision:
        raise ProjectorMismatchError(f"{Path(info.path).name} has no vision encoder; the app takes images only")
    rep = doctor.inspect(model_path)
    if rep.architecture == "clip":
        raise ProjectorMismatchError(f"{Path(model_path).name} is itself a projector, not a language model")
    n_model = rep.embedding_length
    if info.n_embd_text and n_model and info.n_embd_text != n_model:
        raise ProjectorMismatchError(
            f"{Path(info.path).name} was made for a model of embedding size {info.n_embd_text}, but "
            f"{Path(model_path).name} has embedding size {n_model}: it belongs to another model")
    return info


def find_beside(model_path: str | Path) -> Path | None:
    """The projector in the same folder as a model file: the one ``mmproj`` file there, or, among several, the
    one whose name shares the longest start with the model's (``gemma-3-4b-it-Q4_K_M.gguf`` ->
    ``mmproj-gemma-3-4b-it-f16.gguf`` before ``mmproj-other.gguf``). Files that do not fit are skipped."""
    mp = Path(model_path)
    try:
        cands = sorted(f for f in mp.parent.iterdir() if f.is_file() and f != mp and is_projector_name(f.name))
    except OSError:
        return None
    stem = mp.name.lower()
    fitting: list[tuple[int, Path]] = []
    for c in cands:
        try:
            check_pair(mp, c)
        except (GGUFError, ProjectorMismatchError):
            continue
        core = re.sub(r"(^|[-_.])mmproj([-_.]|$)", "-", c.name.lower()).strip("-")
        common = 0
        for a, b in zip(core, stem):
            if a != b:
                break
            common += 1
        fitting.append((common, c))
    if not fitting:
        return None
    return max(fitting, key=lambda t: t[0])[1]
