"""Handing tasks to workers: sessions, credits, claims, leases, and the group committer."""
