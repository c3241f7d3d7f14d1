"""Surefoot protocol: generated messages and gRPC stubs of package surefoot.v1."""
