"""Write the JSON Schemas of the ntxcp 1.0 payloads into the package (spec §4).

Usage::

    python scripts/gen_schemas.py           # (re)write src/ntxcp/v10/schemas/*.json
    python scripts/gen_schemas.py --check   # exit 1 if the files are out of date

The schemas are generated from the models by :mod:`ntxcp.v10.schema`; never edit the
files by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ntxcp.v10.schema import all_schemas, schema_text

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "src" / "ntxcp" / "v10" / "schemas"


def write_schemas(directory: Path, *, check: bool = False) -> list[str]:
    """Write every schema as ``<stem>.json`` into a directory, or check them.

    Files that are already up to date are left untouched; ``.json`` files that no
    schema corresponds to are removed.

    Args:
        directory: where to write (created if needed).
        check: only compare, change nothing.

    Returns:
        The names of the files that were (or, with ``check``, would be) written or
        removed, sorted; empty when the directory is up to date.
    """
    expected = {f"{stem}.json": schema_text(schema) for stem, schema in all_schemas().items()}
    changed: list[str] = []
    if not check:
        directory.mkdir(parents=True, exist_ok=True)
    for name, text in expected.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
            if not check:
                path.write_text(text, encoding="utf-8", newline="\n")
    if directory.is_dir():
        for stale in directory.glob("*.json"):
            if stale.name not in expected:
                changed.append(stale.name)
                if not check:
                    stale.unlink()
    return sorted(changed)


def main(argv: list[str] | None = None) -> int:
    """Run the generator.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when the files are (now) up to date, 1 when ``--check``
        found differences.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only report files that are out of date"
    )
    parser.add_argument(
        "--dir", type=Path, default=SCHEMA_DIR, help="target directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    changed = write_schemas(args.dir, check=args.check)
    verb = "out of date" if args.check else "written"
    for name in changed:
        print(f"{verb}: {name}")
    if not changed:
        print(f"{args.dir}: up to date")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
