"""Operator tools (not deployed): read the audit trail of a local or deployed stack."""
