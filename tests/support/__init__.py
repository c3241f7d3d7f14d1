"""Helpers shared by the end-to-end and client tests: real processes, databases and streams."""
