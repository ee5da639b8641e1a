"""callerauth: server-side caller verification for Twilio Flex (the core shared by every handler)."""
