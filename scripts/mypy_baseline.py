"""Regenerate the per-module mypy baseline in pyproject.toml (the error codes each module reports
today), so `mypy` in CI passes while every new module is checked in full.

Run from the repository root after a merge: `python scripts/mypy_baseline.py`. It runs mypy with
the baseline removed, then writes one `[[tool.mypy.overrides]]` block per module with errors
between the markers below. Shrink the baseline by fixing a module and re-running this script.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

START, END = "# >>> mypy baseline", "# <<< mypy baseline"
PYPROJECT = Path("pyproject.toml")


def main() -> int:
    text = PYPROJECT.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"pyproject.toml has no '{START}' ... '{END}' section", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PYPROJECT.write_text(head + START + "\n" + END + tail, encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, check=False)
    codes: dict[str, set[str]] = collections.defaultdict(set)
    counts: collections.Counter[str] = collections.Counter()
    for line in res.stdout.splitlines():
        m = re.match(r"^src/(selflab/\S+?)\.py:\d+: error: .*\[([a-z-]+)\]$", line.strip())
        if m:
            module = m.group(1).replace("/", ".").removesuffix(".__init__")
            codes[module].add(m.group(2))
            counts[module] += 1
    blocks = [
        f'[[tool.mypy.overrides]]\nmodule = "{mod}"  # {counts[mod]} today\n'
        f"disable_error_code = [{', '.join(repr(c).replace(chr(39), chr(34)) for c in sorted(codes[mod]))}]\n"
        for mod in sorted(codes)
    ]
    PYPROJECT.write_text(head + START + "\n" + "\n".join(blocks) + END + tail, encoding="utf-8")
    print(f"baseline: {sum(counts.values())} errors in {len(blocks)} modules", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
