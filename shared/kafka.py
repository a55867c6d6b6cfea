"""Kafka client settings in one place (the relay and the benchmark baseline use the same)."""

from __future__ import annotations

from typing import Any

from shared.settings import Settings


def client_config(settings: Settings) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        cfg |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        cfg["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return cfg


def producer_config(settings: Settings) -> dict[str, Any]:
    # aiokafka's defaults are weaker (acks=1, no idempotence): the log must not lose or reorder.
    return client_config(settings) | {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
        "request_timeout_ms": 15000,
    }


def consumer_config(settings: Settings) -> dict[str, Any]:
    return client_config(settings) | {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
    }
