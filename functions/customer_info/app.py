"""GET or POST /customer-info: the caller's record, only for the agent who verified them."""

from callerauth.actions import customer_info
from callerauth.wiring import handler_for

routes = {"/customer-info": {"GET": customer_info, "POST": customer_info}}
lambda_handler = handler_for(routes)
