"""Start-up checks of the local stack: a child that has not yet run its program is not "exited"."""

from __future__ import annotations

import time

from deploy.local import free_ports
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


def test_given_many_processes_to_start_then_each_gets_a_port_of_its_own() -> None:
    ports = free_ports(64)  # the simulator starts 23 at once; one port picked twice left a site answering for two
    assert len(set(ports)) == 64 and all(p > 0 for p in ports)
