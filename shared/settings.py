"""Settings from the environment, one place, documented defaults."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = Field("declarations", description="Which service this process runs.")
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/points_declarations",
        description="The service's own PostgreSQL database.",
    )
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); "
                          "the system's CAs when unset.",
    )
    topic_namespace: str = Field("points", description="Prefix of every topic name (one county deployment).")
    deployment: str = Field(
        "local", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Name of this installation (its databases): part of consumer group ids and event sources, "
                    "so two installations sharing a namespace never split partitions between them.",
    )
    topic_partitions: int = Field(12, ge=1)
    topic_replication_factor: int = Field(1, ge=1, description="3 in production, 1 locally.")
    topic_min_insync_replicas: int = Field(1, ge=1, description="2 in production, 1 locally.")
    http_host: str = "127.0.0.1"
    http_port: int = 8101
    run_relay: bool = Field(True, description="Run the outbox relay inside the service process.")
    run_projections: bool = Field(True, description="Run the service's projections inside its process.")
    relay_batch_size: int = Field(2000, ge=1)
    relay_idle_sleep_s: float = Field(0.02, gt=0, description="Pause between relay rounds while rows keep coming.")
    relay_poll_s: float = Field(
        1.0, gt=0, description="Longest the relay sleeps when idle: an append wakes it at once (NOTIFY), this only "
                               "bounds the wait for rows written without one.")
    projection_batch_records: int = Field(
        20_000, ge=1, description="Most records a live projection applies in one transaction: fewer, larger "
                                  "transactions while it is behind the log (a certification's awards).")
    max_body_bytes: int = Field(256 * 1024, description="Larger HTTP bodies are refused with 413.")
    token_secret: str = Field(
        "dev-only-secret-change-me-in-production-32b", min_length=32,
        description="HS256 key of the bearer tokens. The default is public: services refuse it unless "
                    "ALLOW_DEV_SECRETS=1. `make up` generates one into .stack/secrets.json.",
    )
    allow_dev_secrets: bool = Field(
        False, description="Development only: let a service start with the public TOKEN_SECRET or without "
                           "a Kafka password. Never set in an installation.",
    )
    timezone: str = Field("Asia/Shanghai", description="The county's civil time (month boundaries).")
    site: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="On a community site's machine: this process is site <name>'s intake side (the declarations "
                    "service): its events carry the site's source and chain, its read models hold its own "
                    "community, its consumer groups are its own. Must be in SITES. Unset in the county.",
    )
    sites: str = Field(
        "", description="The county's registry of community sites: name=community pairs separated by commas, e.g. "
                        "`hz01=c-hz01,hz02=c-hz02`. Declarations events are accepted from these sites (each only "
                        "about its own community). The same on every county service, every site and the auditor; "
                        "a site is never removed (its history stays on the log). See docs/sites.md.",
    )

    @model_validator(mode="after")
    def _registry_readable(self) -> Settings:
        from shared.sites import this_site

        this_site(self)  # RegistryError (a ValueError): a malformed SITES, or a SITE not in it
        return self


DEV_TOKEN_SECRET = "dev-only-secret-change-me-in-production-32b"
# Secrets anyone can read in this repository or its documentation: never accepted without the dev flag.
WELL_KNOWN_SECRETS = frozenset({
    DEV_TOKEN_SECRET, "", "changeme", "change-me", "secret", "password", "postgres", "admin", "kafka",
    "admin-secret", "dev", "test",
})


class InsecureSecrets(RuntimeError):
    """A secret is missing or well known and ALLOW_DEV_SECRETS is not set."""


def secret_problems(settings: Settings) -> list[str]:
    """What is wrong with the secrets of ``settings`` (empty: nothing), ignoring the dev flag."""
    problems = []
    if settings.token_secret in WELL_KNOWN_SECRETS:
        problems.append("TOKEN_SECRET is the public development default (set TOKEN_SECRET; `make up` generates one)")
    sasl = settings.kafka_security_protocol.upper().startswith("SASL") or bool(settings.kafka_sasl_mechanism)
    if sasl:
        if not settings.kafka_sasl_username:
            problems.append("KAFKA_SASL_USERNAME is missing while Kafka SASL is configured")
        if not settings.kafka_sasl_password:
            problems.append("KAFKA_SASL_PASSWORD is missing while Kafka SASL is configured")
        elif settings.kafka_sasl_password in WELL_KNOWN_SECRETS:
            problems.append("KAFKA_SASL_PASSWORD is a well-known password")
    return problems


def check_secrets(settings: Settings, what: str = "service") -> None:
    """Raise ``InsecureSecrets`` with one line naming every problem, unless ALLOW_DEV_SECRETS=1."""
    problems = secret_problems(settings)
    if problems and not settings.allow_dev_secrets:
        raise InsecureSecrets(f"{what} {settings.service_name!r} refuses to start: " + "; ".join(problems)
                              + " (ALLOW_DEV_SECRETS=1 accepts this on a development machine)")


@lru_cache
def get_settings() -> Settings:
    return Settings()
