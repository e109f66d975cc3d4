"""Print the packages whose installed version differs from requirements/lock.txt.

Used by `make test-latest` after installing the newest versions pyproject.toml allows:
``python requirements/drift.py requirements/lock.txt``. Lock entries whose environment
marker does not apply to this interpreter are skipped. Exit status 0 either way: drift is
information, the test run decides.
"""

import re
import sys
from importlib.metadata import distributions

from packaging.markers import Marker


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: str) -> dict[str, str]:
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, _, version = requirement.strip().partition("==")
        pins[canonical(name)] = version.strip()
    return pins


def main() -> None:
    pins = locked(sys.argv[1])
    installed = {canonical(d.metadata["Name"]): d.version for d in distributions()}
    rows = [(name, pins.get(name, "-"), installed.get(name, "-")) for name in sorted(set(pins) | set(installed))]
    rows = [row for row in rows if row[1] != row[2] and row[0] not in ("cooklab", "pip", "setuptools", "wheel")]
    print(f"{len(rows)} package(s) differ from {sys.argv[1]} (lock -> installed):")
    for name, old, new in rows:
        print(f"  {name:32s} {old:>14s} -> {new}")


if __name__ == "__main__":
    main()
