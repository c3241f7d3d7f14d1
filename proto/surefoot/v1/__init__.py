"""Generated code for surefoot.v1 (see proto/generate.py); do not edit by hand."""
