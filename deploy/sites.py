"""Community sites on one machine: what the county does when a site joins, and how a site process is set.

Used by the local stack (``python -m deploy.stack site-add``), the county simulator and the tests.
A site is the declarations service started with ``SITE=<name>``, the registry ``SITES``, its own
database (``DATABASE_URL``) and its own Kafka principal ``site-<name>`` (docs/sites.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy import credentials
from deploy.credentials import Secrets
from shared.settings import Settings
from shared.sites import Site
from shared.topics import acl_bindings, create_acls, sasl_configured, upsert_scram_users


def with_sites(settings: Settings, sites: Sequence[Site]) -> Settings:
    """``settings`` with ``sites`` added to its registry (SITES), after those it names already."""
    known = [s for s in settings.sites.split(",") if s.strip()]
    names = {entry.partition("=")[0].strip() for entry in known}
    known += [f"{s.name}={s.community_id}" for s in sites if s.name not in names]
    return settings.model_copy(update={"sites": ",".join(known)})


async def admit(admin: Settings, sites: Sequence[Site], secrets_file: Path | None) -> Secrets | None:
    """What the county does when ``sites`` join: a password per site principal in the installation's
    secrets (``secrets_file``; none when Kafka has no SASL), its SCRAM user on the brokers, and its ACLs
    (write the declarations topic, read the review topic, its own consumer groups). ``admin``: the
    county's admin credential. Idempotent."""
    if not sites:
        return credentials.load(secrets_file) if secrets_file is not None else None
    secrets = None
    if secrets_file is not None:
        secrets = credentials.add_principals(secrets_file, [s.principal for s in sites])
        if sasl_configured(admin):
            await upsert_scram_users(admin, {s.principal: secrets.password(s.principal) for s in sites},
                                     credentials.SCRAM_MECHANISM)
    if sasl_configured(admin):
        await create_acls(admin, acl_bindings(admin, services=(), auditor=None, sites=tuple(sites)))
    return secrets


def site_settings(county: Settings, site: Site, database_url: str, secrets: Secrets | None) -> Settings:
    """The settings of site ``site``'s process: the county's (its registry must name the site), the site's
    own database, and the site's own Kafka credential only."""
    own = county.model_copy(update={"service_name": "declarations", "site": site.name, "database_url": database_url})
    return own if secrets is None else secrets.settings_for(own, site.principal)  # type: ignore[no-any-return]


def database_name(site: Site) -> str:
    return f"points_site_{site.name.replace('-', '_')}"
