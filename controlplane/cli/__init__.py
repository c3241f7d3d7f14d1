"""The surefoot command line."""
