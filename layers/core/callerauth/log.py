"""The one structured (JSON) logger. Log masked destinations only: never a code, token or customer field."""

from aws_lambda_powertools import Logger

logger = Logger(service="callerauth")
