"""Community sites: the intake side of one community, feeding the county's log.

A site runs the declarations service for its own community, on its own machine: its own
PostgreSQL (event store and outbox), its own Kafka principal (``site-<name>``), its own
CloudEvents source (the deployment's declarations source plus ``/<name>``, see
``shared.envelope.source_for``) and so its own hash chain. Its relay forwards whenever the county's
Kafka answers; while it does not, commands are still taken and stored.

The county's registry of sites is configuration (``SITES``: ``name=community`` pairs), the same
on every county service, every site and the auditor. What it decides:

- consumers accept declarations events from a registered site's source, and only events about
  that site's community; anything else goes to the dead-letter topic with the reason
  (``shared.projection.Owners``);
- each site's chain is verified on its own (``python -m shared.verify --site <name>``);
- a site reads the review topic (keyed by community id) only in its community's partition
  (``partition_of``);
- each site principal may write the declarations topic and read the review topic, in consumer
  groups of its own (``shared.topics.acl_bindings``).

A site is never taken out of the registry: its history stays on the log and a replay must still
accept it. A site that closes keeps its entry; its Kafka credential is deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from aiokafka.partitioner import murmur2

if TYPE_CHECKING:
    from shared.settings import Settings

SITE_SERVICE = "declarations"  # the intake side: the one service a site runs
SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
_NAME = re.compile(SITE_NAME)
_COMMUNITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # shared.http.ID_PATTERN, 64 characters at most


class RegistryError(ValueError):
    """``SITES`` cannot be read: the process refuses to start rather than guess."""


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    community_id: str

    @property
    def principal(self) -> str:
        """The site's Kafka principal (SCRAM user)."""
        return f"site-{self.name}"


def parse_registry(text: str) -> tuple[Site, ...]:
    """``"hz01=c-hz01, hz02=c-hz02"`` (commas or line feeds) -> the sites, in the order given."""
    sites: list[Site] = []
    for entry in (e.strip() for e in re.split(r"[,\n]", text or "")):
        if not entry:
            continue
        name, sep, community = (part.strip() for part in entry.partition("="))
        if not sep or not _NAME.fullmatch(name) or not _COMMUNITY.fullmatch(community):
            raise RegistryError(f"SITES entry {entry!r} is not name=community (name: lower-case letters, digits "
                                "and dashes; community: an id such as c-hz01)")
        if any(s.name == name for s in sites):
            raise RegistryError(f"SITES names site {name!r} twice")
        if any(s.community_id == community for s in sites):
            raise RegistryError(f"SITES gives community {community!r} two sites: one community, one site")
        sites.append(Site(name, community))
    return tuple(sites)


@lru_cache(maxsize=64)
def _parsed(text: str) -> tuple[Site, ...]:
    return parse_registry(text)


def registry(settings: Settings) -> tuple[Site, ...]:
    return _parsed(settings.sites)


def this_site(settings: Settings) -> Site | None:
    """The site this process runs as (``SITE``), or None in the county."""
    if not settings.site:
        return None
    for site in registry(settings):
        if site.name == settings.site:
            return site
    raise RegistryError(f"SITE={settings.site} is not in the registry of sites (SITES)")


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a record with this key is written to: the producers' default partitioner
    (Kafka's, murmur2 of the key bytes). A site reads the review topic only there."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def group_prefix(settings: Settings) -> str:
    """Every consumer group id of this process starts with it: a site's groups are its own, so a site
    never shares partitions with the county's consumers or with another site."""
    base = f"{settings.topic_namespace}.{settings.deployment}."
    return f"{base}site-{settings.site}." if settings.site else base
