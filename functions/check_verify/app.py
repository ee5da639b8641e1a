"""POST /check-verify: check the code the caller read back; record the approval."""

from callerauth.actions import check_verify
from callerauth.wiring import handler_for

routes = {"/check-verify": {"POST": check_verify}}
lambda_handler = handler_for(routes)
