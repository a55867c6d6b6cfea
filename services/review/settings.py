"""Settings of the review service (environment, prefix ``REVIEW_``); shared ones are in shared.settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore")

    quorum: int = Field(2, ge=2, description="Signers needed to certify: the secretary plus quorum-1 members.")
    objection_window_days: float = Field(7, gt=0, description="公示 objection window, from the first posting.")
    clock_file: str | None = Field(
        None, description="Tests and demos only: a file holding an ISO time the service takes as 'now'.")


@lru_cache
def review_settings() -> ReviewSettings:
    return ReviewSettings()
