"""The cuttable link (deploy.link) with plain sockets: bytes pass; a cut drops the open connections and
resets new ones; after the restore new connections pass again."""

from __future__ import annotations

import gc
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import credentials
from deploy.link import Link
from deploy.local import KafkaCluster, free_port


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server on a free port (the far end of the link)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture
def link(echo: int) -> Iterator[Link]:
    link = Link([(free_port(), echo)]).start()
    yield link
    link.close()


def _connect(link: Link) -> socket.socket:
    return socket.create_connection(("127.0.0.1", link.routes[0][0]), timeout=5)


def _echoes(sock: socket.socket, data: bytes = b"ping") -> bool:
    try:
        sock.sendall(data)
        return sock.recv(4096) == data
    except OSError:  # reset
        return False


def test_given_an_open_link_then_bytes_pass_both_ways(link: Link) -> None:
    with _connect(link) as sock:
        assert _echoes(sock)


def test_given_an_open_connection_when_the_link_is_cut_then_it_is_dropped(link: Link) -> None:
    with _connect(link) as sock:
        assert _echoes(sock)
        # when
        link.cut()
        # then: the connection is gone (end of stream or reset), nothing echoes any more
        try:
            sock.sendall(b"lost")
            assert sock.recv(4096) == b""
        except OSError:
            pass
        assert link.connections == 0


def test_given_a_cut_link_then_new_connections_are_reset_until_restored(link: Link) -> None:
    link.cut()
    # then: a new connection is reset on arrival
    with _connect(link) as sock:
        assert not _echoes(sock)
    assert link.refused >= 1
    # when
    link.restore()
    # then: new connections pass again
    with _connect(link) as sock:
        assert _echoes(sock)
    assert link.cuts == 1


def test_given_a_site_link_then_the_broker_has_a_site_listener_advertised_at_the_proxy(tmp_path: Path) -> None:
    secrets = credentials.load_or_create(tmp_path / "secrets.json")
    cluster = KafkaCluster(tmp_path, [9092, 9094, 9096], [9093, 9095, 9097], secrets=secrets,
                           site_links=[(9192, 9193), (9194, 9195), (9196, 9197)])
    # when
    props = cluster.nodes[1]._security_props()
    # then: sites bootstrap through the proxies, and each broker sends them there again
    assert cluster.site_bootstrap == "127.0.0.1:9193,127.0.0.1:9195,127.0.0.1:9197"
    assert props["listeners"].endswith(",SITE://127.0.0.1:9194")
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:9094,SITE://127.0.0.1:9195"
    assert props["listener.security.protocol.map"].endswith(",SITE:SASL_PLAINTEXT")
    assert "listener.name.site.scram-sha-512.sasl.jaas.config" in props
    # and: without site links, nothing changes
    plain = KafkaCluster(tmp_path / "b", [9092, 9094, 9096], [9093, 9095, 9097], secrets=secrets)
    assert "SITE" not in plain.nodes[0]._security_props()["listeners"]
    assert plain.site_bootstrap == plain.bootstrap


def test_given_an_open_connection_when_the_link_is_closed_then_no_forwarding_is_left_pending(
        echo: int, caplog: pytest.LogCaptureFixture) -> None:
    link = Link([(free_port(), echo)]).start()
    with _connect(link) as sock:
        assert _echoes(sock)
        # when: the link closes (its loop stops) while the connection is open
        link.close()
    # then: no task of it was destroyed pending (asyncio says so when one is collected)
    gc.collect()
    assert not [r for r in caplog.records if "Task was destroyed but it is pending" in r.getMessage()]
