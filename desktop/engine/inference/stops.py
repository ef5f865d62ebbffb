"""Stop strings over streamed text, the same for the local and the remote backend.

Text that could still grow into a stop string is held back until it either completes one (the answer
ends there, the stop string is not shown) or stops matching (it is handed out). Runs on the engine
process's main thread, once per generated piece, so it stays O(length of the stop strings) per call.
"""
from __future__ import annotations


def find_stop(text: str, stops: list[str], emitted: int) -> int | None:
    """Where the first stop string in ``text`` begins, looking only where new text could complete one."""
    best = None
    for s in stops:
        i = text.find(s, max(0, emitted - len(s)))
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def held_back(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class StopScanner:
    """Feeds streamed pieces through the stop strings; ``text[:emitted]`` is the answer so far."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        # A tail that could grow into a stop string ends with one of that string's characters: most
        # pieces end with none of them, and skip the prefix search (this runs once per token).
        self._chars = frozenset("".join(self.stops))
        self.text = ""
        self.emitted = 0
        self.stopped = False  # a stop string ended the answer

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that is now safe to show ("" when none)."""
        self.text += piece
        hit = find_stop(self.text, self.stops, self.emitted)
        if hit is not None:
            self.text = self.text[:hit]
            self.stopped = True
            return self._take(len(self.text))
        if not self.text or self.text[-1] not in self._chars:
            return self._take(len(self.text))
        return self._take(len(self.text) - held_back(self.text, self.stops))

    def rest(self, tail: str = "") -> str:
        """The stream ended without a stop string: everything held back (plus ``tail``) is the answer's end."""
        self.text += tail
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out
