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

from ntxcp.v10.schema import write_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "src" / "ntxcp" / "v10" / "schemas"


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
