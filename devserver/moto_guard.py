"""moto's DynamoDB made fit for the dev stack's concurrent requests (its threaded server, one backend).

moto's DynamoDB backend is not thread-safe: TransactWriteItems deep-copies the tables it touches (for
its rollback) while another thread may write them, and the transaction then crashes (HTTP 500). Real
DynamoDB serialises conflicting writes itself, so serialising moto's requests changes nothing the
backend could observe. moto's instance tracking (it only feeds moto's dashboard) would also keep every
copy alive, so it is emptied after each request.
"""

from __future__ import annotations

import threading
from typing import Any

_installed = threading.Lock()
_done = False


def serialise_dynamodb() -> None:
    """Install once per process: one DynamoDB request at a time, and no tracked copies kept."""
    global _done
    with _installed:
        if _done:
            return
        from moto.core.model_instances import model_data
        from moto.dynamodb.responses import DynamoHandler

        lock = threading.Lock()
        call_action = DynamoHandler.call_action

        def serialised(handler: Any) -> Any:
            with lock:
                try:
                    return call_action(handler)
                finally:
                    for model in model_data.get("dynamodb", {}).values():
                        getattr(model, "instances_tracked", []).clear()

        DynamoHandler.call_action = serialised  # type: ignore[method-assign]
        _done = True
