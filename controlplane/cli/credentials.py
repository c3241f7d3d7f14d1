"""`surefoot credentials create|list|revoke|hash`: who may call the control plane.

`create`, `list` and `revoke` ask CredentialService with an admin's token. The first admin
of an installation has no token yet: `create --database-url URL` writes it straight to the
database (whoever may write the database is trusted already), audited like any other.
`hash` prints what an auth file keys a token by.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import credential_service_pb2_grpc

from controlplane.cli import output
from controlplane.cli.arguments import page_size
from controlplane.cli.client import ControlPlaneClient, add_client_arguments
from controlplane.cli.errors import usage_error

_ROLE_HELP = (
    "NAMESPACE=ROLE[,ROLE] with roles viewer, operator, approver, worker, admin; "
    "NAMESPACE '*' is every namespace; repeat for several namespaces"
)


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "credentials",
        help="create, list and revoke credentials (admin)",
        description="Credentials say who calls and what it may do in which namespace. "
        "Tokens are stored as their sha256 only; a client certificate is known by its "
        "subject CN.",
    )
    group.set_defaults(func=lambda args: output.print_group_help(group))
    commands = group.add_subparsers(title="commands", metavar="COMMAND")

    create = commands.add_parser(
        "create",
        help="make a credential; print its token (shown once)",
        description="Make a bearer token (printed once: the control plane keeps only its "
        "hash) or, with --certificate-subject, the identity of mTLS client certificates. "
        "You must be admin of every namespace you give roles in.",
    )
    create.add_argument("principal", metavar="PRINCIPAL", help="who the credential says it is")
    create.add_argument(
        "--role",
        action="append",
        required=True,
        metavar="NAMESPACE=ROLES",
        help=_ROLE_HELP,
    )
    create.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="a group approvals may name as group:NAME (repeatable)",
    )
    create.add_argument(
        "--step-type",
        action="append",
        default=[],
        metavar="NAME",
        help="limit a worker credential to this step type (repeatable; default: any)",
    )
    create.add_argument("--description", default="", metavar="TEXT", help="what it is for")
    create.add_argument(
        "--certificate-subject",
        default="",
        metavar="CN",
        help="a credential for client certificates with this subject CN, not a token",
    )
    create.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="write to this database directly instead of asking the control plane: how the "
        "first admin is made (no environment default, so that it is never done by accident)",
    )
    add_client_arguments(create, writes=True)
    create.set_defaults(func=create_credential)

    listing = commands.add_parser(
        "list",
        help="list the credentials you administer (never their secrets)",
        description="The credentials with a role in --namespace, or with --all-namespaces "
        "every credential all of whose namespaces you administer.",
    )
    listing.add_argument(
        "--all-namespaces", action="store_true", help="not only those of --namespace"
    )
    listing.add_argument("--revoked", action="store_true", help="include revoked credentials")
    listing.add_argument(
        "--limit", type=page_size, default=0, metavar="N", help="at most N (1-1000; default 100)"
    )
    listing.add_argument(
        "--page-token", default="", metavar="T", help="continue a previous listing"
    )
    add_client_arguments(listing)
    listing.set_defaults(func=list_credentials)

    revoke = commands.add_parser(
        "revoke",
        help="revoke a credential: refused within a second on every control plane",
    )
    revoke.add_argument("id", metavar="ID", help="credential id, as `credentials list` shows")
    add_client_arguments(revoke, writes=True)
    revoke.set_defaults(func=revoke_credential)

    hashing = commands.add_parser(
        "hash",
        help="print sha256:<hex> of a token read on stdin, as an auth file keys it",
        description="Reads one token on stdin (surrounding blanks ignored) and prints the "
        "key an auth file's `tokens:` mapping uses for it.",
    )
    hashing.set_defaults(func=hash_token)


def parse_roles(specs: Sequence[str]) -> dict[str, list[str]]:
    """`["default=operator,approver", "*=viewer"]` -> `{"default": [...], "*": [...]}`."""
    roles: dict[str, list[str]] = {}
    for spec in specs:
        namespace, equals, listed = spec.partition("=")
        names = [r.strip() for r in listed.split(",") if r.strip()]
        if not equals or not namespace.strip() or not names:
            raise usage_error(f"--role {spec!r}: expected {_ROLE_HELP.split(' with ')[0]}")
        roles.setdefault(namespace.strip(), []).extend(names)
    return roles


def create_credential(args: argparse.Namespace) -> int:
    roles = parse_roles(args.role)
    if args.database_url:
        return _create_in_database(args, roles)
    request = cpb.CreateCredentialRequest(
        principal=args.principal,
        namespaces={ns: cpb.NamespaceRoles(roles=held) for ns, held in roles.items()},
        groups=args.group,
        step_types=args.step_type,
        description=args.description,
        kind=(
            cpb.CREDENTIAL_KIND_CERTIFICATE
            if args.certificate_subject
            else cpb.CREDENTIAL_KIND_TOKEN
        ),
        subject=args.certificate_subject,
    )
    with ControlPlaneClient.from_args(args) as client:
        stub = credential_service_pb2_grpc.CredentialServiceStub(client._channel)
        response = client.call(stub.CreateCredential, request)
    if args.json:
        output.print_json(response)
        return 0
    _print_created(response.credential.id, args.principal, roles, response.token)
    return 0


def _create_in_database(args: argparse.Namespace, roles: dict[str, list[str]]) -> int:
    from datetime import UTC, datetime

    from controlplane import errors
    from controlplane.auth.grants import checked_grant, issue
    from controlplane.store.database import open_engine
    from controlplane.store.migrate import upgrade_engine

    try:
        grant = checked_grant(
            principal=args.principal,
            namespaces=roles,
            certificate_subject=args.certificate_subject,
            groups=args.group,
            step_types=args.step_type,
            description=args.description,
        )
    except errors.InvalidArgument as exc:
        raise usage_error(str(exc)) from exc
    engine = open_engine(args.database_url, pool_size=1)
    try:
        upgrade_engine(engine)
        with engine.begin() as connection:
            created, token = issue(connection, grant, f"{_os_user()}@database", datetime.now(UTC))
    except errors.Refusal as exc:
        raise usage_error(str(exc)) from exc
    finally:
        engine.dispose()
    if args.json:
        output.print_json({"credential": {"id": created.id}, "token": token})
        return 0
    _print_created(created.id, args.principal, roles, token)
    return 0


def _print_created(
    credential_id: str, principal: str, roles: dict[str, list[str]], token: str
) -> None:
    granted = " ".join(f"{ns}={','.join(held)}" for ns, held in sorted(roles.items()))
    print(f"credential {credential_id} for {principal}: {granted}")
    if token:
        print(f"token: {token}")
        print("(shown once: the control plane keeps only its hash)", file=sys.stderr)


def list_credentials(args: argparse.Namespace) -> int:
    request = cpb.ListCredentialsRequest(
        namespace="" if args.all_namespaces else args.namespace,
        include_revoked=args.revoked,
        page_size=args.limit,
        page_token=args.page_token,
    )
    with ControlPlaneClient.from_args(args) as client:
        stub = credential_service_pb2_grpc.CredentialServiceStub(client._channel)
        response = client.call(stub.ListCredentials, request)
    if args.json:
        output.print_json(response)
        return 0
    if not response.credentials:
        print("no credentials")
    output.print_table(
        ["id", "principal", "kind", "namespaces", "created", "revoked"],
        (
            [
                c.id,
                c.principal,
                _kind(c),
                " ".join(f"{ns}={','.join(c.namespaces[ns].roles)}" for ns in sorted(c.namespaces)),
                output.timestamp(c.created_at),
                output.timestamp(c.revoked_at),
            ]
            for c in response.credentials
        ),
    )
    # On stderr so that a pipe gets the table alone.
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=sys.stderr)
    return 0


def _kind(credential: cpb.Credential) -> str:
    if credential.kind == cpb.CREDENTIAL_KIND_CERTIFICATE:
        return f"certificate CN={credential.subject}"
    return "token"


def revoke_credential(args: argparse.Namespace) -> int:
    with ControlPlaneClient.from_args(args) as client:
        stub = credential_service_pb2_grpc.CredentialServiceStub(client._channel)
        response = client.call(stub.RevokeCredential, cpb.RevokeCredentialRequest(id=args.id))
    if args.json:
        output.print_json(response)
        return 0
    state = "revoked" if response.changed else "was already revoked"
    print(f"credential {args.id} ({response.credential.principal}) {state}")
    return 0


def hash_token(args: argparse.Namespace) -> int:
    from controlplane.auth.tokens import token_hash

    token = sys.stdin.readline().strip()
    if not token:
        raise usage_error("no token on stdin")
    print(token_hash(token))
    return 0


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
