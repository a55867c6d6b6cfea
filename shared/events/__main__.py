"""Write the JSON Schema of every event body: ``python -m shared.events schemas DIR``.

Each lands at ``DIR/<type>.json``; serve DIR at ``shared.events.SCHEMA_BASE`` so every record's
``dataschema`` resolves. Only a new type or version adds a file; a published one never changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from shared.events import catalogue, json_schema, load_catalogue


def write_schemas(out: Path) -> list[Path]:
    load_catalogue()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in catalogue():
        path = out / f"{cls.type_name()}.json"
        path.write_bytes(orjson.dumps(json_schema(cls), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] != "schemas":
        print("usage: python -m shared.events schemas DIR", file=sys.stderr)
        raise SystemExit(2)
    for path in write_schemas(Path(sys.argv[2])):
        print(path)


if __name__ == "__main__":
    main()
