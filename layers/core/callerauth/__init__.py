"""callerauth: server-side caller verification for Twilio Flex (the core shared by every handler).

Records are `typing.NamedTuple`s: a frozen dataclass compiles its generated methods at import. Modules that
define them do without `from __future__ import annotations`, because typing compiles each string annotation
of a NamedTuple at import too (docs/performance.md): their few forward references are quoted by hand.
"""

import gc
import os

# Cold start, in Lambda only: no cyclic garbage collection until the first request is answered
# (wiring.handler_for calls resume_gc). Importing Powertools, boto3 and twilio and making the clients
# allocates objects that nearly all live as long as the container; the collector's passes over them on
# the way cost ~15% of the cold start's CPU (docs/performance.md). Tests and the dev server (no
# AWS_LAMBDA_FUNCTION_NAME) keep the default.
_gc_paused = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and gc.isenabled()
if _gc_paused:
    gc.disable()


def resume_gc() -> None:
    """After the first answer: collections back on, with what init made frozen out of their way."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()
