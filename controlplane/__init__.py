"""Surefoot control plane."""
