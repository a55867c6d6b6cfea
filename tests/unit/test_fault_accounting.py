"""The fault suite's accounting, given / when / then: what the log says about acknowledged commands."""

from __future__ import annotations

from deploy.faults.accounting import LogRecord, tally


def declared(event: str, stream: str, version: int, item: str | None = None) -> LogRecord:
    return LogRecord(event, stream, version, item)


def test_given_every_acknowledged_item_once_in_order_then_the_tally_is_clean() -> None:
    log = [declared("e1", "s-1", 1), declared("e2", "s-1", 2, "i-1"), declared("e3", "s-2", 1, "i-2")]
    t = tally({"i-1", "i-2"}, log)
    assert (t.acknowledged, t.lost, t.doubled, t.reordered, t.copies) == (2, 0, 0, 0, 0) and t.clean


def test_given_an_acknowledged_item_missing_from_the_log_then_it_is_lost() -> None:
    t = tally({"i-1", "i-9"}, [declared("e1", "s-1", 1, "i-1")])
    assert (t.lost, t.doubled) == (1, 0) and not t.clean and "lost i-9" in t.examples


def test_given_a_relay_resend_of_the_same_event_then_it_is_a_copy_not_a_doubled_command() -> None:
    log = [declared("e1", "s-1", 1, "i-1"), declared("e1", "s-1", 1, "i-1")]
    t = tally({"i-1"}, log)
    assert (t.doubled, t.copies, t.reordered) == (0, 1, 0) and t.clean


def test_given_two_different_events_for_one_item_then_the_command_is_doubled() -> None:
    log = [declared("e1", "s-1", 1, "i-1"), declared("e2", "s-1", 2, "i-1")]
    t = tally({"i-1"}, log)
    assert t.doubled == 1 and not t.clean


def test_given_a_gap_or_a_step_back_in_a_stream_then_its_item_is_reordered() -> None:
    log = [declared("e1", "s-1", 1, "i-1"), declared("e3", "s-1", 3, "i-3"), declared("e2", "s-1", 2, "i-2")]
    t = tally({"i-1", "i-2", "i-3"}, log)
    assert (t.reordered, t.streams_out_of_order) == (2, 1)


def test_given_streams_interleaved_then_each_is_ordered_on_its_own() -> None:
    log = [declared("a1", "a", 1, "x"), declared("b1", "b", 1, "y"), declared("a2", "a", 2, "z")]
    assert tally({"x", "y", "z"}, log).clean
