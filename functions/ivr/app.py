"""POST /ivr/start and POST /ivr/check: Twilio's voice webhooks (signed), answered with TwiML."""

from callerauth.ivr import check, serve, start
from callerauth.wiring import handler_for

routes = {"/ivr/start": {"POST": start}, "/ivr/check": {"POST": check}}
lambda_handler = handler_for(routes, server=serve)
