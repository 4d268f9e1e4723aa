"""The MP207 conformance suite runs on whatever rig `--rig` names (default rigs/emulated.toml).

Fixtures come from the bench's pytest plugin (bench/testing/plugin.py); the checks shared by
several requirements live in `checks.py` beside this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `import checks` whatever the import mode
