"""Local development server: API Gateway emulator and Twilio sandbox."""

import sys
from pathlib import Path

# The core layer, importable as Lambda's /opt/python makes it: the sandbox masks with the core's own mask.
_CORE_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "core")
if _CORE_LAYER not in sys.path:
    sys.path.append(_CORE_LAYER)
