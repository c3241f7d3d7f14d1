"""Trust: who calls (credentials, dev mode, `--no-auth`) and what roles it holds where.

`caller` holds the contract every servicer relies on (`Caller`, `Role`); `authenticator`
finds the caller of a call; `auth_file` and `tokens` are where credentials come from and how
they are kept. What each RPC requires is in `controlplane.api.access`.
"""
