"""Tamper evidence: the hash chain of each run's history, and what an approver was shown."""
