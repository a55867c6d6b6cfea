"""``python -m shared.events schemas DIR`` | ``docs [FILE]``.

schemas: the JSON Schema of every event body, at ``DIR/<type>.json``; serve DIR at
``shared.events.SCHEMA_BASE`` so every record's ``dataschema`` resolves. Only a new type or version
adds a file; a published one never changes.
docs: the catalogue page (``docs/events.md`` unless FILE is given), see ``shared.events.page``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from shared.events import catalogue, json_schema, load_catalogue, page

USAGE = "usage: python -m shared.events schemas DIR | docs [FILE]"


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
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "schemas":
        for path in write_schemas(Path(args[1])):
            print(path)
    elif 1 <= len(args) <= 2 and args[0] == "docs":
        print(page.write(Path(args[1]) if len(args) == 2 else page.PAGE))
    else:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
