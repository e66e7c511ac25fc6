"""pallet.storage imports cheaply: tools import it on every start."""

from __future__ import annotations

import subprocess
import sys


def test_import_loads_no_heavy_module() -> None:
    probe = "import sys, pallet.storage; print(' '.join(sorted(m for m in ('pydantic', 'zstandard', 'httpx') if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
