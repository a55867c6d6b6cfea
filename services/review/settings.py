"""Settings of the review service (environment, prefix ``REVIEW_``); shared ones are in shared.settings."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.review.domain.commands import Rules


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore")

    quorum: int = Field(2, ge=2, description="Signers needed to certify: the secretary plus quorum-1 members.")
    objection_window_days: float = Field(7, gt=0, description="公示 objection window, from the first posting.")
    self_verification_communities: list[str] = Field(
        default_factory=list,
        description="Communities with few staff where a recorder may verify an item they entered themselves "
                    "(default: none; nobody verifies what they declared or recorded).")
    command_attempts: int = Field(3, ge=1, le=10, description="Decisions per command before a conflict is a 409.")
    late_item_interval_s: float = Field(1.0, gt=0, description="How often late items are carried to the next month.")
    clock_adjustable: bool = Field(
        False, description="Tests and demos only: a county admin may set the service's clock (POST /admin/clock). "
                           "Leave false in production: the endpoint then refuses.")
    clock_file: str | None = Field(
        None, description="Tests only: a file holding an ISO time the service takes as 'now'.")

    def rules(self, community_id: str, tz: str) -> Rules:
        return Rules(tz=tz, quorum=self.quorum, objection_window=dt.timedelta(days=self.objection_window_days),
                     self_verification=community_id in self.self_verification_communities)


@lru_cache
def review_settings() -> ReviewSettings:
    return ReviewSettings()
