"""Start-up checks of the local stack: a child that has not yet run its program is not "exited"."""

from __future__ import annotations

import time

from deploy.stack import Gone


def test_given_a_process_missing_once_then_it_is_not_yet_gone() -> None:
    gone = Gone(grace_s=0.2)
    assert not gone.for_good(None)


def test_given_a_process_that_shows_up_again_then_the_grace_starts_over() -> None:
    gone = Gone(grace_s=0.2)
    gone.for_good(None)
    time.sleep(0.25)
    assert not gone.for_good(1234)
    assert not gone.for_good(None)


def test_given_a_process_missing_for_the_whole_grace_then_it_has_exited() -> None:
    gone = Gone(grace_s=0.2)
    gone.for_good(None)
    time.sleep(0.25)
    assert gone.for_good(None)
