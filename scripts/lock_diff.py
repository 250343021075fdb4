"""Print the packages whose installed version (pip freeze on stdin) differs from a lock file.

Used by scripts/drift.sh; stdlib only, because it runs in a throwaway virtualenv.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")


def _pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def main() -> int:
    locked = _pins(Path(sys.argv[1]).read_text(encoding="utf-8").splitlines())
    installed = _pins(sys.stdin.read().splitlines())
    changed = 0
    for name in sorted(locked.keys() | installed.keys()):
        old, new = locked.get(name, "-"), installed.get(name, "-")
        if old != new and name not in {"pip", "setuptools"}:
            print(f"  {name}: {old} -> {new}")
            changed += 1
    print(f"  ({changed} of {len(locked)} locked packages differ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
