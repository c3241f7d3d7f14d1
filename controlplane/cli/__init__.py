"""The surefoot command line."""

import os

# gRPC's C core prints INFO lines of its own on stderr (every failed TLS handshake, with a
# timestamp and a source file), before and besides the one line the CLI reports for the same
# failure. It reads the variable when it loads, which is why it is set here, before any
# command imports grpc; a GRPC_VERBOSITY the user sets still wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
