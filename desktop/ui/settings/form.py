"""The settings form both settings screens show: one row per field of the settings table (GUI thread).

The chat settings panel shows the per-chat fields, the profile settings dialog all of them; each row has the
field's label and unit, its editor (a spin box, with a slider in the panel; a list; a text box) and its one-line
help. A row shows the saved value as it is: the editor's range is the table's range, widened to take a value
outside it (which validation then refuses, naming the key), and a number shows as many decimals as it has. A
row whose editor was not touched gives back the very value it was filled with (``flash_attn: true`` stays
true, a system prompt keeps its last newline), so saving writes exactly what is shown.

Spin boxes, sliders and lists take the mouse wheel only when they have the keyboard focus: a wheel over the
scrolled panel scrolls it instead of changing the setting under the pointer.
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette, QWheelEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.profiles.fields import Field

_INT_MAX = 2**31 - 1  # a QSpinBox's range is a C int


class _WheelWithFocus:
    """A wheelEvent that works only with the keyboard focus; without it the event goes on to the parent (the
    scroll area). The focus comes from a click or Tab, never from the wheel (StrongFocus)."""

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(e)  # type: ignore[misc]
        else:
            e.ignore()


class SpinBox(_WheelWithFocus, QSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


class DoubleSpinBox(_WheelWithFocus, QDoubleSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


class ComboBox(_WheelWithFocus, QComboBox):
    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


class Slider(_WheelWithFocus, QSlider):
    pass


def _decimals(v: float, least: int) -> int:
    """The fewest decimals (at least ``least``, at most 6) that show ``v`` exactly."""
    for d in range(least, 7):
        if round(v, d) == v:
            return d
    return 6


class FieldRow(QWidget):
    """One setting: title and editor on a line, an optional slider under them, then the help."""

    changed = Signal()

    def __init__(self, f: Field, slider: bool = False) -> None:
        super().__init__()
        self.field = f
        self.spin: QSpinBox | QDoubleSpinBox | None = None
        self.slider: QSlider | None = None
        self.combo: QComboBox | None = None
        self.text: QPlainTextEdit | None = None
        self._orig: Any = None
        self._shown: Any = None
        self._filling = False
        self.scale = 1
        unit = f" ({f.unit})" if f.unit and f.unit.lower() not in f.label.lower() else ""
        self.title = QLabel(f.label + unit)
        self.hint = QLabel(f.help)
        self.hint.setProperty("hint", True)
        self.hint.setWordWrap(True)
        small = self.hint.font()  # the panel's stylesheet sets its own size; elsewhere a step smaller
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.hint.setFont(small)
        pal = self.hint.palette()  # muted; a stylesheet's colour (the panel's) still wins
        pal.setColor(QPalette.ColorRole.WindowText, pal.color(QPalette.ColorRole.PlaceholderText))
        self.hint.setPalette(pal)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 4)
        lay.setSpacing(2)
        if f.kind in ("float", "int"):
            self._build_number(f, slider)
            top = QHBoxLayout()
            top.addWidget(self.title, 1)
            top.addWidget(self.spin)
            lay.addLayout(top)
            if self.slider is not None:
                lay.addWidget(self.slider)
        elif f.kind == "choice":
            self.combo = ComboBox()
            self.combo.addItems(list(f.choices))
            self.combo.setAccessibleName(f.label)
            self.combo.currentTextChanged.connect(self._edited)
            top = QHBoxLayout()
            top.addWidget(self.title, 1)
            top.addWidget(self.combo)
            lay.addLayout(top)
        else:
            self.text = QPlainTextEdit()
            self.text.setTabChangesFocus(True)
            self.text.setAccessibleName(f.label)
            self.text.setFixedHeight(90)
            self.text.textChanged.connect(self._edited)
            lay.addWidget(self.title)
            lay.addWidget(self.text)
        self.title.setBuddy(self.editor)
        lay.addWidget(self.hint)

    @property
    def editor(self) -> QWidget:
        return self.spin or self.combo or self.text  # type: ignore[return-value]

    def _build_number(self, f: Field, slider: bool) -> None:
        if f.kind == "float":
            self.spin = DoubleSpinBox()
            self.spin.setDecimals(f.decimals)
            self.scale = 10 ** f.decimals
        else:
            self.spin = SpinBox()
        self.spin.setSingleStep(f.step)  # type: ignore[arg-type]
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.spin.setAccessibleName(f.label)
        if f.special:
            self.spin.setSpecialValueText(f.special)  # shown at the minimum
        self.spin.valueChanged.connect(self._spun)
        if slider:
            self.slider = Slider(Qt.Orientation.Horizontal)
            self.slider.setAccessibleName(f"{f.label} slider")
            self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the spin box is the keyboard's way in
            self.slider.valueChanged.connect(self._slid)
        self.set_bounds(*f.bounds())

    # ---------------------------------------------------------------- range and values

    def _sentinel(self) -> bool:
        """The field takes a word ("auto") besides its numbers: the editor shows it one below the range."""
        return isinstance(self.field.special_value, str)

    def set_bounds(self, lo: float, hi: float) -> None:
        if self.spin is None:
            return
        lo = lo - 1 if self._sentinel() else lo
        hi = min(hi, _INT_MAX) if math.isfinite(hi) else _INT_MAX
        self.spin.setRange(lo, hi)  # type: ignore[arg-type]
        if self.slider is not None:
            self.slider.setRange(int(lo * self.scale), int(min(hi * self.scale, _INT_MAX)))

    def set_value(self, v: Any) -> None:
        """Show ``v`` (the profile's value) without a ``changed`` signal; ``value`` gives it back untouched."""
        self._filling = True
        try:
            if self.spin is not None:
                if isinstance(v, str):  # the special word
                    self.spin.setValue(self.spin.minimum())
                else:
                    if isinstance(self.spin, QDoubleSpinBox):
                        self.spin.setDecimals(_decimals(float(v), self.field.decimals))
                    # never clamp: a value outside the range widens it (validation names it on save)
                    if v < self.spin.minimum() or v > self.spin.maximum():
                        self.set_bounds(min(v, self.field.bounds()[0]), max(v, self.spin.maximum()))
                    self.spin.setValue(v)
                self._sync_slider()
            elif self.combo is not None:
                self.combo.setCurrentText(self.field.shown(v))
            elif self.text is not None:
                self.text.setPlainText("\n".join(v) if self.field.kind == "lines" else str(v or ""))
        finally:
            self._filling = False
        self._orig, self._shown = v, self._raw()

    def _raw(self) -> Any:
        if self.spin is not None:
            return self.spin.value()
        if self.combo is not None:
            return self.combo.currentText()
        return self.text.toPlainText() if self.text is not None else None

    def value(self) -> Any:
        """The shown value, in the profile's terms ("auto", a list of lines): the filled-in one if untouched."""
        raw = self._raw()
        if self._shown is not None and raw == self._shown:
            return self._orig
        f = self.field
        if self.spin is not None:
            if self._sentinel() and raw == self.spin.minimum():
                return f.special_value
            return int(raw) if f.kind == "int" else round(float(raw), self.spin.decimals())
        if f.kind == "lines":
            return [s for s in raw.split("\n") if s]
        if f.kind == "choice":
            return f.stored(raw)
        return raw

    # ---------------------------------------------------------------- editors

    def _sync_slider(self) -> None:
        if self.slider is not None and self.spin is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(self.spin.value() * self.scale)))
            self.slider.blockSignals(False)

    def _slid(self, v: int) -> None:
        if self.spin is not None:
            self.spin.setValue(v / self.scale if self.field.kind == "float" else v)

    def _spun(self, _v: float) -> None:
        self._sync_slider()
        self._edited()

    def _edited(self, *_: object) -> None:
        if not self._filling:
            self.changed.emit()


class SettingsForm(QWidget):
    """Rows for ``groups`` of fields, each group under its heading; ``changed(key)`` after a user's edit."""

    changed = Signal(str)

    def __init__(self, groups: list[tuple[str, list[Field]]], sliders: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsForm")
        self.rows: dict[str, FieldRow] = {}
        self.groups: dict[str, QWidget] = {}
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        for title, fields in groups:
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(2)
            if title:
                if self.groups:
                    lay.addSpacing(8)
                head = QLabel(title)
                head.setProperty("subheading", True)
                head.setWordWrap(True)
                lay.addWidget(head)
            for f in fields:
                row = FieldRow(f, slider=sliders and f.kind in ("float", "int"))
                row.changed.connect(lambda key=f.key: self.changed.emit(key))
                self.rows[f.key] = row
                lay.addWidget(row)
            self.groups[title] = box
            col.addWidget(box)
        # One column of editors, as wide as the widest needs (its range's longest number, or "random").
        boxes = [r.spin or r.combo for r in self.rows.values() if r.spin or r.combo]
        width = max((b.sizeHint().width() for b in boxes), default=0)
        for b in boxes:
            b.setFixedWidth(width)

    def editor(self, key: str) -> Any:
        return self.rows[key].editor

    def fill(self, values: dict[str, Any], profile: Any = None) -> None:
        """Show ``values`` (dotted keys), in the ranges ``profile`` gives (the context's limit)."""
        for key, v in values.items():
            row = self.rows[key]
            row.set_bounds(*row.field.bounds(profile))
            row.set_value(v)

    def values(self) -> dict[str, Any]:
        return {key: row.value() for key, row in self.rows.items()}

    def value(self, key: str) -> Any:
        return self.rows[key].value()
