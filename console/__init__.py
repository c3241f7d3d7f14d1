"""Surefoot terminal console."""
