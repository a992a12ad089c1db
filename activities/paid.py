"""Every paid model call is counted in its run's usage, whatever happens after it.

A model activity charges each answer as it arrives, to a ledger in the artifact store keyed by
the activity (workflow, run, activity id): an attempt retried on another worker, which shares no
disk with the first, still finds what the first one paid for. What the activity returns, or
the error it fails with, carries the usage of every attempt so far: an attempt whose answer did
not parse, whose worker died after the call, or that failed for good still reaches the run's
usage and budget exactly once — the workflow sees one completion or one final failure per
activity.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import model_usage
from agents.ledger import Price
from agents.model import Model, ModelCall, TurnResult
from contracts.budget import USAGE_DETAIL, Usage, usage_detail, usage_from
from ratchet.artifacts import ArtifactStore

P = ParamSpec("P")
R = TypeVar("R")


class CallLedger:
    """One marker per answered call, named by its activity and a fresh id (written once, by
    the attempt that paid for it); an activity's total is the sum of its markers."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @staticmethod
    def _prefix(workflow_id: str, run_id: str, activity_id: str) -> str:
        key = hashlib.sha256(f"{workflow_id}\0{run_id}\0{activity_id}".encode()).hexdigest()
        return f"ledger-{key[:40]}."

    def record(self, workflow_id: str, run_id: str, activity_id: str, usage: Usage) -> None:
        name = self._prefix(workflow_id, run_id, activity_id) + uuid.uuid4().hex
        self.store.claim(name, json.dumps(asdict(usage)).encode())

    def total(self, workflow_id: str, run_id: str, activity_id: str) -> Usage:
        total = Usage()
        for name in self.store.markers(self._prefix(workflow_id, run_id, activity_id)):
            held = self.store.marker(name)
            try:
                total = total + usage_from(json.loads(held or b""))
            except ValueError:  # a marker that is not a usage: nothing a call paid for
                continue
        return total


@dataclass
class _Meter:
    ledger: CallLedger
    prices: dict[str, Price]
    key: tuple[str, str, str]


_METER: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar("meter", default=None)


def charge(model: Model, call: ModelCall, turn: TurnResult) -> None:
    """Record one answered call (agents.asking calls this before anything else can fail)."""
    meter = _METER.get()
    if meter is None:
        raise RuntimeError("charge() outside a @paid activity")
    requested = model.model_for(call.purpose)
    usage = model_usage(model.provider, requested, turn.model, turn.counts, meter.prices)
    if not turn.billed:
        usage = Usage(turns=1)  # the scripted test double: a turn, no cost
    meter.ledger.record(*meter.key, usage)


class Metered(Protocol):
    """What @paid needs from an activity class."""

    ledger: CallLedger
    prices: dict[str, Price]


def paid(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Meter a model activity (a method of a Metered class): its result's `usage` is the
    ledger's total for the activity, and a failure carries that total in its details (see
    workflows.failures.usage_in)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        owner = cast(Metered, args[0])
        info = activity.info()
        key = (info.workflow_id or "", info.workflow_run_id or "", info.activity_id)
        token = _METER.set(_Meter(owner.ledger, owner.prices, key))
        try:
            result = await fn(*args, **kwargs)
        except ApplicationError as err:
            raise _with_usage(err, owner.ledger.total(*key)) from err
        except Exception as err:  # retryable: the next attempt's total includes this one's
            spent = owner.ledger.total(*key)
            if not spent.turns:
                raise
            raise _with_usage(ApplicationError(str(err), type=type(err).__name__), spent) from err
        finally:
            _METER.reset(token)
        return replace(result, usage=owner.ledger.total(*key))  # type: ignore[type-var]

    return wrapper


def _with_usage(err: ApplicationError, usage: Usage) -> ApplicationError:
    details: list[Any] = [d for d in err.details if not _is_usage(d)]
    return ApplicationError(
        err.message, *details, usage_detail(usage), type=err.type,
        non_retryable=err.non_retryable, next_retry_delay=err.next_retry_delay,
    )  # fmt: skip


def _is_usage(detail: object) -> bool:
    return isinstance(detail, dict) and USAGE_DETAIL in detail
