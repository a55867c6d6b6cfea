"""Settings of the ranking service (environment, prefix ``RANKING_``); shared ones are in shared.settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ranking.domain.consequences import Rules


class RankingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RANKING_", extra="ignore")

    excellent_top: int = Field(5, ge=1,
                               description="seed: party members in the top 5 of the year may be rated excellent")
    promotion_top: int = Field(3, ge=1, description="seed: cadres in the top 3 … get promotion priority")
    promotion_quarters: int = Field(4, ge=1, description="… for this many consecutive closed quarters")
    loss_bottom: int = Field(5, ge=1, description="seed: bottom 5 … lose eligibility")
    loss_quarters: int = Field(4, ge=1, description="… for this many consecutive closed quarters")
    event_top: int = Field(10, ge=1, description="entries (ties included) carried by a RankingChanged event")


@lru_cache
def ranking_settings() -> RankingSettings:
    return RankingSettings()


def ranking_rules() -> Rules:
    s = ranking_settings()
    return Rules(excellent_top=s.excellent_top, promotion_top=s.promotion_top,
                 promotion_quarters=s.promotion_quarters, loss_bottom=s.loss_bottom, loss_quarters=s.loss_quarters)
