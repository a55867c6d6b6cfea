"""The topic registry: every topic named here and nowhere else, with its key and settings.

Topics are the county's immutable history: no compaction, infinite retention.
Run ``python -m shared.topics create`` to create them (idempotent).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Topic:
    logical: str
    key: str  # what the record key is
    doc: str

    def name(self, settings: Settings | None = None) -> str:
        return f"{(settings or get_settings()).topic_namespace}.{self.logical}"


DECLARATIONS = Topic("declarations", "subject id (roster and points items); rule code for the catalogue",
                     "Roster, rule catalogue, declarations, deductions, activities.")
REVIEW = Topic("review", "community id: one ordered stream per community",
               "Verification, monthly certification, public notice, objections, corrections.")
RANKING = Topic("ranking", "community id", "Rankings, consequences, talks, role models.")
EXCHANGE = Topic("exchange", "subject id", "Love Supermarket stock, balances, redemptions.")
DEAD_LETTER = Topic("deadletter", "original key", "Records a consumer could not decode or apply, with the reason.")

ALL = (DECLARATIONS, REVIEW, RANKING, EXCHANGE, DEAD_LETTER)
BY_SERVICE = {"declarations": DECLARATIONS, "review": REVIEW, "ranking": RANKING, "exchange": EXCHANGE}


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "min.insync.replicas": str(settings.topic_min_insync_replicas),
    }


async def create_topics(settings: Settings | None = None, topics: tuple[Topic, ...] = ALL) -> list[str]:
    """Create missing topics; returns the names that were created."""
    settings = settings or get_settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    created = []
    try:
        existing = set(await admin.list_topics())
        for topic in topics:
            name = topic.name(settings)
            if name in existing:
                continue
            response = await admin.create_topics([NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=topic_configs(settings),
            )])
            for error in response.topic_errors:
                code = error[1]
                if code == TopicAlreadyExistsError.errno:
                    continue
                if code != 0:
                    raise RuntimeError(f"cannot create topic {error[0]}: error {code} {error[2:]}")
                created.append(name)
    finally:
        await admin.close()
    return created


def main() -> None:
    if sys.argv[1:] != ["create"]:
        print("usage: python -m shared.topics create", file=sys.stderr)
        raise SystemExit(2)
    created = asyncio.run(create_topics())
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))


if __name__ == "__main__":
    main()
