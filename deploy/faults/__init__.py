"""The fault suite: ``python -m deploy.faults`` (docs/deploy.md, "Fault suite").

A cluster-mode stack of its own (three Kafka nodes, RF 3, min ISR 2, SASL + ACLs; PostgreSQL; the four
services and one community site as processes, the site's Kafka traffic on a link the suite can cut), a
steady load of declarations through the HTTP intake API, and one fault after another (a month certified
during one of them). After each: every acknowledged command is on the log exactly once, per-stream order
holds, every read model equals a rebuild, every chain verifies.
"""
