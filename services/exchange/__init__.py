"""The exchange service: the Love Supermarket (爱心超市).

domain/      pure: member codes, the model, commands, ``decide`` and ``evolve`` (no I/O, no clock)
tables.py    the service's state in Postgres and the one ``apply`` of events to it (commands and projection)
state.py     loading what a command touches under row locks; held.py: what a batch holds
handlers.py  one straight line per command; counter.py: group commit with idempotency keys
projection.py, views.py, api.py, pages.py (+ templates/), app.py (composition root)
"""
