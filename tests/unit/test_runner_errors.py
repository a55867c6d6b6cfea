"""Which database errors the projection runner retries (never dead-letters) and which it blames on the record."""

from __future__ import annotations

import asyncpg
import pytest

from shared.projection import is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("exc", [
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.SerializationError("could not serialize access"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ConnectionResetError(),
])
def test_a_transient_error_is_retried(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.NotNullViolationError("null value in column"),
    asyncpg.UndefinedTableError("relation does not exist"),
    ValueError("a projection's own bug"),
])
def test_an_error_of_the_record_is_not(exc: Exception) -> None:
    assert not is_transient(exc)
