"""POST /check-verify: check the code the caller read back; record the approval."""

from callerauth.actions import check_verify
from callerauth.wiring import lambda_handler

lambda_handler = lambda_handler({"/check-verify": {"POST": check_verify}})
