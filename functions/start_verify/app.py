"""POST /start-verify (send a code) and POST /cancel-verify (cancel it, clear the approval)."""

from callerauth.actions import cancel_verify, start_verify
from callerauth.wiring import handler_for

routes = {"/start-verify": {"POST": start_verify}, "/cancel-verify": {"POST": cancel_verify}}
lambda_handler = handler_for(routes)
