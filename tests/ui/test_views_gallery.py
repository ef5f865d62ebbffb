"""scripts/gallery_views.render_gallery writes every model view as a PNG, with real content in it."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QImage


def test_render_gallery_writes_each_view(qapp, tmp_path: Path, demo_model) -> None:
    from scripts.gallery_views import render_gallery

    before = dict(os.environ)
    files = render_gallery(tmp_path / "shots")
    assert {f.name for f in files} >= {"model-picker.png", "hub-search.png", "quants.png", "models-library.png"}
    for f in files:
        img = QImage(str(f))
        assert not img.isNull() and img.width() >= 400 and img.height() >= 300, f
        # Not a blank grab: a card view has many distinct colours (text, pills, borders).
        colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
        assert len(colours) > 20, f
    assert dict(os.environ) == before  # the throw-away data dirs and the loopback Hub are undone
