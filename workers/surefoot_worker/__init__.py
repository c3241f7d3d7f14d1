"""Surefoot Python worker SDK."""
