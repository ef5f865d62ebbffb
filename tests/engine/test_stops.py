"""Stop strings over streamed pieces: the rules both backends share."""
from __future__ import annotations

from desktop.engine.inference.stops import StopScanner


def run(pieces: list[str], stops: list[str]) -> tuple[list[str], StopScanner]:
    sc = StopScanner(stops)
    shown = [sc.feed(p) for p in pieces]
    return shown, sc


def test_a_stop_string_split_across_pieces_is_held_back_and_never_shown() -> None:
    shown, sc = run(["Hello", " <|e", "ot_", "id|> more"], ["<|eot_id|>"])
    assert shown == ["Hello", " ", "", ""]
    assert sc.stopped and sc.text[:sc.emitted] == "Hello "


def test_a_prefix_that_stops_matching_is_released() -> None:
    shown, sc = run(["a <|", "x", "y"], ["<|eot_id|>"])
    assert shown == ["a ", "<|x", "y"] and not sc.stopped


def test_the_earliest_of_several_stops_wins_and_the_tail_is_flushed_at_the_end() -> None:
    shown, sc = run(["one ### two User: three"], ["User:", "###"])
    assert shown == ["one "] and sc.stopped and sc.text == "one "
    shown, sc = run(["ends with ##"], ["###"])
    assert shown == ["ends with "] and not sc.stopped
    assert sc.rest("!") == "##!" and sc.text[:sc.emitted] == "ends with ##!"


def test_no_stop_strings_passes_everything_through() -> None:
    shown, sc = run(["a", "", "b"], ["", ""])
    assert shown == ["a", "", "b"] and sc.rest() == ""
