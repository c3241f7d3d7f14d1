"""Who may call what: the one table of RPC -> required role, applied to every handler.

Every surefoot.v1 handler is wrapped when it is registered (`Guarded`, like the error map of
`failures.ErrorMapped`): the wrapper finds the caller (UNAUTHENTICATED without a valid
credential where one is needed), then requires the method's role in the namespace the
request names, before the servicer runs. A caller with no role at all in that namespace
gets NOT_FOUND (not even the namespace's existence leaks), one with another role
PERMISSION_DENIED; either way nothing is written. Servicers find the objects they act on
within that namespace only, so a run, approval or dead letter of another namespace is
NOT_FOUND too.

A method missing from the table is served to installation-wide admins only (and logged
at start): a new RPC is closed until someone decides who may call it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from controlplane.api.failures import NulIn, Unparsable, refuse
from controlplane.api.namespaces import checked_namespace
from controlplane.api.wrapping import WrappingServer
from controlplane.auth.authenticator import Authenticator, serving
from controlplane.auth.caller import ANY_NAMESPACE, Caller, Role

log = logging.getLogger("surefoot.api")


def _named(request: Any) -> Iterable[str]:
    """The namespace the request names (empty: "default"); InvalidArgument if malformed."""
    return (checked_namespace(request.namespace),)


def _granted(request: Any) -> Iterable[str]:
    """The namespaces a new credential would give roles in: its creator must be admin in
    each of them ("*" included), so no one grants more than they hold."""
    return tuple(request.namespaces)


def _filtered(request: Any) -> Iterable[str]:
    return (checked_namespace(request.namespace),) if request.namespace else ()


def _recorded(request: Any) -> Iterable[str]:
    """RecordEvaluation names its namespace inside the evaluation."""
    return (checked_namespace(request.evaluation.namespace),)


def _everywhere(request: Any) -> Iterable[str]:
    return (ANY_NAMESPACE,)


@dataclass(frozen=True)
class Rule:
    # None: an authenticated caller (or a trusted one in dev / --no-auth) is enough here;
    # the servicer checks the namespace it learns later (a worker's Hello, a stored
    # credential's namespaces).
    role: Role | None
    namespaces: Callable[[Any], Iterable[str]] = _named


_WORKFLOWS = "/surefoot.v1.WorkflowService/"
_OUTCOMES = "/surefoot.v1.ConnectorOutcomeService/"
_CREDENTIALS = "/surefoot.v1.CredentialService/"
_OPERATIONS = "/surefoot.v1.OperationService/"
_EVALUATIONS = "/surefoot.v1.EvaluationService/"

RULES: dict[str, Rule] = {
    # Definitions: reading is viewing; changing what runs is an admin's.
    _WORKFLOWS + "RegisterDefinition": Rule(Role.ADMIN),
    _WORKFLOWS + "GetDefinition": Rule(Role.VIEWER),
    _WORKFLOWS + "ListDefinitions": Rule(Role.VIEWER),
    _WORKFLOWS + "DeprecateDefinition": Rule(Role.ADMIN),
    # Runs.
    _WORKFLOWS + "StartRun": Rule(Role.OPERATOR),
    _WORKFLOWS + "GetRun": Rule(Role.VIEWER),
    _WORKFLOWS + "ListRuns": Rule(Role.VIEWER),
    _WORKFLOWS + "GetRunHistory": Rule(Role.VIEWER),
    _WORKFLOWS + "WatchRun": Rule(Role.VIEWER),
    _WORKFLOWS + "WatchRuns": Rule(Role.VIEWER),
    _WORKFLOWS + "CancelRun": Rule(Role.OPERATOR),
    _WORKFLOWS + "PauseRun": Rule(Role.OPERATOR),
    _WORKFLOWS + "ResumeRun": Rule(Role.OPERATOR),
    _WORKFLOWS + "GetRunAt": Rule(Role.VIEWER),
    _WORKFLOWS + "ForkRun": Rule(Role.OPERATOR),
    # Approvals: deciding also needs to be one of the approvers the node names.
    _WORKFLOWS + "ListApprovals": Rule(Role.VIEWER),
    _WORKFLOWS + "GetApproval": Rule(Role.VIEWER),
    _WORKFLOWS + "DecideApproval": Rule(Role.APPROVER),
    _WORKFLOWS + "SendEvent": Rule(Role.OPERATOR),
    # Dead letters.
    _WORKFLOWS + "ListDeadLetters": Rule(Role.VIEWER),
    _WORKFLOWS + "RetryStep": Rule(Role.OPERATOR),
    _WORKFLOWS + "SkipStep": Rule(Role.OPERATOR),
    _WORKFLOWS + "RedriveDeadLetters": Rule(Role.OPERATOR),
    # Durable operations (redrives): starting and cancelling is operating, following viewing.
    _OPERATIONS + "StartRedrive": Rule(Role.OPERATOR),
    # Abandon and fork over a selection are an admin's too (api/run_actions.py says why).
    _OPERATIONS + "StartRunAction": Rule(Role.OPERATOR),
    _OPERATIONS + "GetOperation": Rule(Role.VIEWER),
    _OPERATIONS + "WatchOperation": Rule(Role.VIEWER),
    _OPERATIONS + "CancelOperation": Rule(Role.OPERATOR),
    _OPERATIONS + "ListOperations": Rule(Role.VIEWER),
    _OPERATIONS + "ListOperationItems": Rule(Role.VIEWER),
    # Workers: the stream's namespace comes in its Hello, checked by the servicer.
    "/surefoot.v1.WorkerService/Connect": Rule(None),
    _OUTCOMES + "BeginCall": Rule(Role.WORKER),
    _OUTCOMES + "CompleteCall": Rule(Role.WORKER),
    _OUTCOMES + "ClearCall": Rule(Role.WORKER),
    "/surefoot.v1.AuditService/VerifyRuns": Rule(Role.VIEWER),
    # The workers view: who is connected, and which queues nobody serves.
    "/surefoot.v1.WorkerAdminService/ListWorkers": Rule(Role.VIEWER),
    "/surefoot.v1.WorkerAdminService/ListQueuedStepTypes": Rule(Role.VIEWER),
    # Evaluations of AI nodes: attaching a set and recording an outcome (which can make a
    # require_eval version latest) is operating; reading them is viewing.
    _EVALUATIONS + "PutEvalSet": Rule(Role.OPERATOR),
    _EVALUATIONS + "GetEvalSet": Rule(Role.VIEWER),
    _EVALUATIONS + "RecordEvaluation": Rule(Role.OPERATOR, _recorded),
    _EVALUATIONS + "ListEvaluations": Rule(Role.VIEWER),
    _EVALUATIONS + "GetEvaluation": Rule(Role.VIEWER),
    # Credentials: admins of the namespaces concerned (see api/credentials.py).
    _CREDENTIALS + "CreateCredential": Rule(Role.ADMIN, _granted),
    _CREDENTIALS + "ListCredentials": Rule(Role.ADMIN, _filtered),
    _CREDENTIALS + "RevokeCredential": Rule(None),
    # Who the caller is: anyone the server lets in may ask about themselves.
    _CREDENTIALS + "WhoAmI": Rule(None),
}

# What a method nobody listed gets: installation-wide admins only.
CLOSED = Rule(Role.ADMIN, _everywhere)


def rule_for(method: str) -> Rule:
    return RULES.get(method, CLOSED)


def authorize(caller: Caller, rule: Rule, request: Any) -> None:
    """Raises NotFound or PermissionDenied unless `caller` may make `request`."""
    if rule.role is None:
        return
    message = request.message if isinstance(request, NulIn) else request
    if isinstance(message, Unparsable):
        return  # refused as INVALID_ARGUMENT by the error map, before anything is read
    for namespace in rule.namespaces(message):
        caller.require(namespace, rule.role)


class Guarded(WrappingServer):
    """Every handler registered through it comes out behind its rule. Give it the handlers
    after the error map (`ErrorMapped(Guarded(server, auth))`), so that the caller is checked
    first: a request without a credential learns nothing, not even whether its body parses."""

    def __init__(self, server: grpc.aio.Server, auth: Authenticator) -> None:
        super().__init__(server, lambda handler, method: guard_handler(handler, method, auth))


def guard_handler(handler: Any, method: str, auth: Authenticator) -> Any:
    """The same handler, behind the method's rule."""
    if method not in RULES:
        log.warning("%s has no access rule: only admins of every namespace may call it", method)
    rule = rule_for(method)
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=_unary_unary(handler.unary_unary, method, rule, auth))
    if handler.unary_stream is not None:
        return handler._replace(
            unary_stream=_unary_stream(handler.unary_stream, method, rule, auth)
        )
    if handler.stream_unary is not None:
        return handler._replace(
            stream_unary=_stream_unary(handler.stream_unary, method, rule, auth)
        )
    return handler._replace(stream_stream=_stream_stream(handler.stream_stream, method, rule, auth))


async def _admitted(
    auth: Authenticator, context: grpc.aio.ServicerContext, method: str, rule: Rule, request: Any
) -> Caller:
    """The caller, once it may make `request` (a stream's messages come later: None);
    otherwise the call ends with the refusal's status."""
    try:
        caller = await auth.identify(context)
        authorize(caller, rule, request)
    except Exception as exc:  # noqa: BLE001 - every refusal becomes its status
        if isinstance(exc, grpc.aio.AbortError):
            raise
        await refuse(context, exc, method)
    return caller


def _unary_unary(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    method: str,
    rule: Rule,
    auth: Authenticator,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        caller = await _admitted(auth, context, method, rule, request)
        with serving(context, caller):
            return await behaviour(request, context)

    return call


def _unary_stream(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
    method: str,
    rule: Rule,
    auth: Authenticator,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        caller = await _admitted(auth, context, method, rule, request)
        with serving(context, caller):
            async for response in behaviour(request, context):
                yield response

    return call


def _stream_unary(
    behaviour: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], Awaitable[Any]],
    method: str,
    rule: Rule,
    auth: Authenticator,
) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        caller = await _admitted(auth, context, method, _streamed(rule), None)
        with serving(context, caller):
            return await behaviour(requests, context)

    return call


def _stream_stream(
    behaviour: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]],
    method: str,
    rule: Rule,
    auth: Authenticator,
) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        caller = await _admitted(auth, context, method, _streamed(rule), None)
        with serving(context, caller):
            async for response in behaviour(requests, context):
                yield response

    return call


def _streamed(rule: Rule) -> Rule:
    # A client stream names its namespace in a message the servicer reads: before it, only
    # who calls is known. A closed method stays closed.
    return rule if rule is CLOSED else Rule(None)
