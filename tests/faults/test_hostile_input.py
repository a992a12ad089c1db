"""Hostile input (issue 8): every refusal is a clear 4xx with a message, and loses nothing.

Real app, real HTTP (raw sockets where httpx would tidy the request up), real Temporal. A refused
request must answer in seconds with a JSON `detail` and no traceback, start no workflow (counted
on a namespace of its own, after a visibility barrier) and write no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.main import MAX_BODY_BYTES, create_app
from contracts.drift import DRIFT_WORKFLOW
from contracts.investigation import INVESTIGATION_WORKFLOW
from contracts.runs import FORWARD_WORKFLOW
from ratchet.artifacts import ArtifactNotFound, FilesystemArtifactStore
from ratchet.settings import Settings
from tests.conftest import TOKEN, _free_namespaces, make_settings, serve_app
from tests.utils.repos import PY_REPO, commit, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script
from tests.utils.sentry_fixtures import fixtures_dir
from tests.workflows.helpers import wait_for_end
from worker import build_worker

FIXTURES = fixtures_dir()  # the shared fixtures when present, else the project's own copy
SIGNATURES: dict[str, Any] = json.loads((FIXTURES / "_signatures.json").read_text())
SECRET: str = SIGNATURES["secret"]
ISSUE_ID = "6543210987"

ANSWER_WITHIN_S = 5.0
RATCHET_RUNS = (
    f"WorkflowType IN ('{FORWARD_WORKFLOW}', '{INVESTIGATION_WORKFLOW}', '{DRIFT_WORKFLOW}')"
)
BARRIER_TYPE = "HostileInputBarrier"
UNKNOWN_RUN = "task-000000000000"
OVER_LIMIT = MAX_BODY_BYTES + 1024 * 1024  # 3 MiB


# --- the gate under attack ----------------------------------------------------------------------


@dataclass
class Gate:
    http: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    """Without the API token, as Sentry calls."""
    base_url: str
    client: Client
    """On a namespace no other test uses: every workflow in it was started by this module."""
    settings: Settings
    base: Path
    """Everything the gate may touch on disk: its home, the allowed root, the outside."""
    root: Path
    repo: Path
    outside: Path
    outside_repo: Path
    script: Path

    def fill(self, text: str, script: Path | None = None) -> str:
        script = script or self.script
        return text.replace("@REPO@", str(self.repo)).replace("@SCRIPT@", str(script))

    def fresh_script(self) -> Path:
        """A policy script no request has sent yet: storing it would show as a new artifact."""
        unique = uuid.uuid4().hex
        return write_script(self.base / "scripts" / f"{unique}.toml", [ADD_MUL_WRONG], plan=unique)


@pytest_asyncio.fixture(scope="module")
async def gate(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_target: str,
    tracer_provider: TracerProvider,
) -> AsyncIterator[Gate]:
    # Module-wide (one app for ~200 requests keeps the file fast), so the isolated namespace is
    # taken from conftest's pool directly: the `isolated_client` fixture is per test.
    namespace = _free_namespaces.pop(0)
    client = await Client.connect(temporal_target, namespace=namespace)
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "root", base / "outside"
    repo = make_repo(root / "calc", PY_REPO)
    outside_repo = make_repo(outside / "secret", PY_REPO)
    (root / "escape").symlink_to(outside_repo)  # inside the root by name, outside in fact
    (base / "scripts").mkdir()
    script = write_script(base / "scripts" / "script.toml", [ADD_MUL_WRONG])
    settings = make_settings(
        base / "home",
        temporal_target,
        namespace=namespace,
        repo_roots=[root],
        sentry_client_secret=SecretStr(SECRET),
        sentry_projects={"billing-api": {"repo": str(repo)}},
    )
    app = create_app(settings, client=client, tracer_provider=tracer_provider)
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
        httpx.AsyncClient(base_url=base_url, timeout=30) as anonymous,
    ):
        yield Gate(
            http,
            anonymous,
            base_url,
            client,
            settings,
            base,
            root,
            repo,
            outside,
            outside_repo,
            script,
        )


# --- what every refusal must look like ----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


async def settled_count(client: Client) -> int:
    """Ratchet runs in the namespace, once visibility has caught up with everything started so
    far: a barrier workflow is started and waited for, so a run started just before it shows."""
    barrier = f"barrier-{uuid.uuid4().hex}"
    await client.start_workflow(BARRIER_TYPE, id=barrier, task_queue=f"nowhere-{barrier}")
    deadline = time.monotonic() + 10
    while not (await client.count_workflows(f"WorkflowId = '{barrier}'")).count:
        assert time.monotonic() < deadline, "visibility never showed the barrier workflow"
        await asyncio.sleep(0.02)
    return (await client.count_workflows(RATCHET_RUNS)).count


async def history_length(client: Client, workflow_id: str) -> int:
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return 0
        raise
    return described.raw_description.workflow_execution_info.history_length


def files_under(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


def assert_refused(answer: Answer, status: int | None = None, mentions: Iterable[str] = ()) -> str:
    """A 4xx (the given one), quickly, with a JSON detail and no traceback; returns the detail."""
    assert 400 <= answer.status < 500, f"{answer.status}: {answer.text[:2000]}"
    if status is not None:
        assert answer.status == status, f"{answer.status}: {answer.text[:2000]}"
    assert answer.seconds < ANSWER_WITHIN_S, f"answered after {answer.seconds:.1f}s"
    assert "Traceback" not in answer.text and 'File "' not in answer.text, answer.text[:2000]
    body = json.loads(answer.body)
    assert isinstance(body, dict), answer.text[:2000]
    detail = body.get("detail")
    assert isinstance(detail, str | list) and detail, answer.text[:2000]
    shown = json.dumps(detail)
    for word in mentions:
        assert word.lower() in shown.lower(), f"{word!r} not in {shown[:2000]}"
    return shown


@contextlib.asynccontextmanager
async def loses_nothing(gate: Gate) -> AsyncIterator[None]:
    """Around a refused request: no run started, no file written or changed.

    Every use ends with a visibility barrier, even when it fails, so the next one can count
    before without one."""
    runs = (await gate.client.count_workflows(RATCHET_RUNS)).count
    files = files_under(gate.base)
    try:
        yield
    except BaseException:
        await settled_count(gate.client)
        raise
    assert files_under(gate.base) == files, "a refused request wrote to disk"
    assert await settled_count(gate.client) == runs, "a refused request started a run"


async def send(
    gate: Gate,
    method: str,
    path: str,
    content: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    token: bool = True,
) -> Answer:
    started = time.monotonic()
    http = gate.http if token else gate.anonymous
    response = await http.request(method, path, content=content, headers=headers)
    return Answer(response.status_code, response.content, time.monotonic() - started)


async def raw(
    base_url: str, head: str, parts: Iterable[bytes] = (), *, token: bool = True
) -> Answer:
    """One HTTP/1.1 exchange on a socket, exactly as written: no URL tidying, any Content-Length,
    any framing."""
    url = httpx.URL(base_url)
    assert url.host and url.port
    lines = head.rstrip("\n").split("\n")
    lines[1:1] = [f"Host: {url.host}:{url.port}", "Connection: close"]
    if token:
        lines.insert(2, f"Authorization: Bearer {TOKEN}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    started = time.monotonic()
    status, payload = await asyncio.to_thread(_exchange, url.host, url.port, request, list(parts))
    return Answer(status, payload, time.monotonic() - started)


def _exchange(host: str, port: int, request: bytes, parts: list[bytes]) -> tuple[int, bytes]:
    # A blocking socket on purpose: when the server answers early and closes while the body is
    # still coming, the write fails but the answer already received can still be read (an
    # asyncio transport drops it on the write error).
    with socket.create_connection((host, port), timeout=ANSWER_WITHIN_S) as sock:
        with contextlib.suppress(OSError):  # the server may stop reading once it has answered
            sock.sendall(request)
            for part in parts:
                sock.sendall(part)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while not _complete(received):
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    raise AssertionError(f"no answer within {ANSWER_WITHIN_S}s") from None
                if not chunk:
                    break
                received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP answer: {received[:200]!r}"
    if b"transfer-encoding: chunked" in head.lower():
        payload = _unchunk(payload)
    return int(head.split(b" ", 2)[1]), payload


def _complete(received: bytes) -> bool:
    head, separator, payload = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(payload) >= int(line.split(b":", 1)[1])
        if line.startswith(b"transfer-encoding:") and b"chunked" in line:
            return payload.endswith(b"0\r\n\r\n")
    return False  # neither: the answer ends when the connection does


def _unchunk(framed: bytes) -> bytes:
    out = b""
    while framed:
        size_line, _, rest = framed.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, framed = out + rest[:size], rest[size + 2 :]
    return out


def chunked(total: int, piece: bytes) -> list[bytes]:
    """`total` bytes and a little more in chunked transfer framing (no Content-Length)."""
    frame = b"%x\r\n%s\r\n" % (len(piece), piece)
    return [frame] * (total // len(piece) + 1) + [b"0\r\n\r\n"]


# --- 1. every Sentry fixture, with its recorded headers -----------------------------------------


def sentry_cases() -> list[str]:
    names = sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("_"))
    # make_oversized.py writes its file on demand; the suite makes one the same way every time.
    return [*names, "made:oversized_event_alert.json:3", "made:oversized_event_alert.json:1.5"]


def sentry_delivery(name: str) -> tuple[bytes, dict[str, str], set[int]]:
    """The body, the headers and the statuses that are right for one fixture."""
    if name.startswith("made:") or name.startswith("oversized"):
        megabytes = float(name.rsplit(":", 1)[1]) if name.startswith("made:") else 0.0
        if megabytes:  # as make_oversized.py does it
            event = json.loads((FIXTURES / "event_alert_triggered.json").read_bytes())
            event["data"]["event"]["extra"] = {"blob": "A" * int(megabytes * 1024 * 1024)}
            body = json.dumps(event).encode()
        else:
            body = (FIXTURES / name).read_bytes()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = dict(SIGNATURES["fixtures"]["event_alert_triggered.json"]["headers"])
        return body, headers | {"Sentry-Hook-Signature": signature}, {413}
    body = (FIXTURES / name).read_bytes()
    recorded = SIGNATURES["fixtures"].get(name)
    if recorded is None:  # a new fixture without recorded headers is, for now, unsigned
        return body, {"Content-Type": "application/json"}, {401}
    headers = dict(recorded["headers"])
    if "Sentry-Hook-Signature" not in headers or str(recorded.get("expect", "")).startswith("401"):
        return body, headers, {401}
    signed = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if headers["Sentry-Hook-Signature"] != signed:
        return body, headers, {401}
    resource, action = headers.get("Sentry-Hook-Resource"), json.loads(body).get("action")
    if resource == "installation":
        return body, headers, {200, 202}  # acknowledged, nothing started
    if resource == "issue" and action in ("created", "unresolved", "resolved", "ignored"):
        return body, headers, {200, 202}  # started, joined or cancelled
    if resource in ("event_alert", "error") and b'"billing-api"' in body.replace(b"/", b'"'):
        return body, headers, {200, 202}  # a project the gate maps to a repository
    return body, headers, set(range(400, 500))


@pytest.mark.parametrize("name", sentry_cases())
async def test_every_sentry_fixture_gets_its_answer_and_only_valid_ones_start_work(
    gate: Gate, name: str
) -> None:
    body, headers, expected = sentry_delivery(name)
    if not expected & {200, 202}:
        # A delivery that got through would join the investigation a valid one started (a
        # signal, not a new workflow): its history must not grow either.
        events = await history_length(gate.client, f"sentry-{ISSUE_ID}")
        async with loses_nothing(gate):
            answer = await send(gate, "POST", "/webhooks/sentry", body, headers, token=False)
            assert_refused(answer)
            assert answer.status in expected, answer.text
        assert await history_length(gate.client, f"sentry-{ISSUE_ID}") == events
        return
    runs = await settled_count(gate.client)
    answer = await send(gate, "POST", "/webhooks/sentry", body, headers, token=False)
    now = await settled_count(gate.client)
    assert answer.status in expected, answer.text
    assert answer.seconds < ANSWER_WITHIN_S
    accepted = json.loads(answer.body)
    if headers["Sentry-Hook-Resource"] == "installation":
        assert accepted["status"] == "acknowledged"
        assert now == runs
    else:  # started, joined or cancelled: the investigation exists
        assert accepted["run_id"] == f"sentry-{ISSUE_ID}", accepted
        found = await gate.client.count_workflows(f"WorkflowId = 'sentry-{ISSUE_ID}'")
        assert found.count == 1


@pytest.mark.parametrize("megabytes", [1.5, 3])
async def test_a_chunked_oversized_sentry_body_is_refused_before_it_is_read(
    gate: Gate, megabytes: float
) -> None:
    body, headers, _ = sentry_delivery(f"made:oversized_event_alert.json:{megabytes}")
    head = "POST /webhooks/sentry HTTP/1.1\nTransfer-Encoding: chunked\n" + "".join(
        f"{k}: {v}\n" for k, v in headers.items()
    )
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    framed = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    async with loses_nothing(gate):
        assert_refused(await raw(gate.base_url, head, framed, token=False), 413)


# --- 2. malformed bodies on every endpoint that takes one ---------------------------------------

# Each endpoint with a body it would accept, and a string field that hostile text goes into.
ENDPOINTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "tasks": (
        "/tasks",
        {"repo": "@REPO@", "goal": "add mul", "policy": "scripted", "policy_script": "@SCRIPT@"},
        "base_ref",
    ),
    "investigations": (
        "/investigations",
        {"repo": "@REPO@", "reproduce": {"test_command": "python -m pytest -q"}},
        "bad_ref",
    ),
    "budget": (f"/runs/{UNKNOWN_RUN}/budget", {"max_turns": 5}, "max_turns"),
    "approve": (f"/runs/{UNKNOWN_RUN}/approve", {"by": "alice", "comment": "ok"}, "by"),
    "reject": (f"/runs/{UNKNOWN_RUN}/reject", {"reason": "no"}, "reason"),
    "cancel": (f"/runs/{UNKNOWN_RUN}/cancel", {"reason": "stop"}, "reason"),
    "fork": (f"/runs/{UNKNOWN_RUN}/fork", {"from_step": "base"}, "from_step"),
    "drift": (
        "/drift",
        {"repo": "@REPO@", "policy": "scripted", "policy_script": "@SCRIPT@"},
        "ref",
    ),
}
JSON = {"Content-Type": "application/json"}
DEEP = 100_000
MULTIPART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="repo"\r\n\r\n/etc\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="goal"\r\n\r\nx\r\n--XyZ--\r\n'
)


def with_field(body: dict[str, Any], field: str, raw_value: str) -> str:
    """The body as JSON text with `field` set to `raw_value` (JSON text, not encoded again)."""
    marker = "\u2063hostile\u2063"
    return json.dumps(body | {field: marker}).replace(json.dumps(marker), raw_value)


def body_cases() -> list[Any]:
    cases = []
    for endpoint, (_, good, field) in ENDPOINTS.items():
        valid = json.dumps(good)
        variants: list[tuple[str, str | bytes, dict[str, str], int | None, tuple[str, ...]]] = [
            ("malformed-json", valid[:-5], JSON, 422, ("JSON",)),
            ("truncated-string", '{"repo": "/etc', JSON, 422, ("JSON",)),
            ("json-array", "[]", JSON, 422, ()),
            ("text-plain", valid, {"Content-Type": "text/plain"}, None, ()),
            ("xml-json-looking", valid, {"Content-Type": "application/xml"}, None, ()),
            (
                "multipart",
                MULTIPART,
                {"Content-Type": "multipart/form-data; boundary=XyZ"},
                None,
                (),
            ),
            (
                "unknown-field",
                json.dumps(good | {"surprise_field": 1}),
                JSON,
                422,
                ("surprise_field",),
            ),
            ("deeply-nested", '{"a": ' + "[" * DEEP + "]" * DEEP + "}", JSON, None, ()),
            ("nested-in-field", with_field(good, field, "[" * 500 + "]" * 500), JSON, 422, ()),
            (
                "non-utf8",
                with_field(good, field, '"x\udcff"').encode(errors="surrogateescape"),
                JSON,
                None,
                (),
            ),
            ("nan", with_field(good, field, "NaN"), JSON, 422, ()),
            ("huge-number", with_field(good, field, "1" + "0" * 400), JSON, None, ()),
        ]
        if endpoint not in ("cancel",):  # cancel's body is optional: these are just "no reason"
            variants += [
                ("empty-body", "", JSON, 422, ()),
                ("json-null", "null", JSON, 422, ()),
            ]
        for name, content, headers, status, mentions in variants:
            cases.append(
                pytest.param(endpoint, content, headers, status, mentions, id=f"{endpoint}-{name}")
            )
    return cases


@pytest.mark.parametrize(("endpoint", "content", "headers", "status", "mentions"), body_cases())
async def test_malformed_bodies_are_refused_with_a_message(
    gate: Gate,
    endpoint: str,
    content: str | bytes,
    headers: dict[str, str],
    status: int | None,
    mentions: tuple[str, ...],
) -> None:
    path = ENDPOINTS[endpoint][0]
    script = gate.fresh_script()
    data = gate.fill(content, script).encode() if isinstance(content, str) else content
    async with loses_nothing(gate):
        assert_refused(await send(gate, "POST", path, data, headers), status, mentions)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("framing", ["content-length", "chunked", "lying-small", "lying-huge"])
async def test_bodies_over_the_limit_are_refused_quickly_however_they_are_framed(
    gate: Gate, endpoint: str, framing: str
) -> None:
    path = ENDPOINTS[endpoint][0]
    piece = b" " * 65536
    if framing == "content-length":
        head = f"POST {path} HTTP/1.1\nContent-Type: application/json\nContent-Length: {OVER_LIMIT}"
        parts = [b"{"] + [piece] * (OVER_LIMIT // len(piece)) + [b" " * (len(piece) - 2) + b"}"]
        expected: int | None = 413
    elif framing == "chunked":  # no Content-Length at all
        head = f"POST {path} HTTP/1.1\nContent-Type: application/json\nTransfer-Encoding: chunked"
        parts = chunked(OVER_LIMIT, piece)
        expected = 413
    elif framing == "lying-small":  # says 10 bytes, sends 3 MiB: only the 10 are the body
        head = f"POST {path} HTTP/1.1\nContent-Type: application/json\nContent-Length: 10"
        parts = [b'{"repo": "'] + [piece] * (OVER_LIMIT // len(piece))
        expected = None
    else:  # says 3 MiB, sends a few bytes and waits: the answer must not wait for the rest
        head = f"POST {path} HTTP/1.1\nContent-Type: application/json\nContent-Length: {OVER_LIMIT}"
        parts = [b'{"repo": "']
        expected = 413
    async with loses_nothing(gate):
        assert_refused(await raw(gate.base_url, head, parts), expected)


async def test_a_one_megabyte_goal_is_refused_quickly_naming_the_limit(gate: Gate) -> None:
    good = json.loads(gate.fill(json.dumps(ENDPOINTS["tasks"][1]), gate.fresh_script()))
    async with loses_nothing(gate):
        answer = await send(
            gate, "POST", "/tasks", json.dumps(good | {"goal": "g" * 1_000_000}).encode(), JSON
        )
        assert_refused(answer, 422, ("goal", str(gate.settings.max_goal_chars)))
        assert answer.seconds < 2


# NUL bytes, traversing refs and numbers out of range, in the fields that hold them.
FIELD_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("tasks", {"repo": "@REPO@\u0000"}, ()),
    ("tasks", {"base_ref": "HEAD\u0000"}, ()),
    ("tasks", {"base_ref": "main\u0000--upload-pack=touch /tmp/x"}, ()),
    ("tasks", {"base_ref": "../../../etc/passwd"}, ("unknown ref",)),
    ("tasks", {"base_ref": "--output=/tmp/owned"}, ("not a ref",)),
    ("tasks", {"policy_script": "@SCRIPT@\u0000"}, ()),
    ("tasks", {"test_command": "python -m pytest\u0000 -q"}, ()),
    ("tasks", {"goal": "add mul\u0000"}, ()),
    ("tasks", {"max_repair_rounds": 21}, ("max_repair_rounds",)),
    ("tasks", {"max_repair_rounds": -1}, ("max_repair_rounds",)),
    ("tasks", {"max_repair_rounds": 2.5}, ("max_repair_rounds",)),
    ("tasks", {"perspectives": 11}, ("perspectives",)),
    ("tasks", {"pattern_share": 0}, ("pattern_share",)),
    ("tasks", {"pattern_share": 1e999}, ("pattern_share",)),
    ("tasks", {"approval_timeout_s": 0}, ("approval_timeout_s",)),
    ("tasks", {"approval_timeout_s": 1e999}, ("approval_timeout_s",)),
    ("tasks", {"lenses": ["x"] * 11}, ("lenses",)),
    ("tasks", {"budget": {"max_tokens": 0}}, ("max_tokens",)),
    ("tasks", {"budget": {"max_cost_usd": -1}}, ("max_cost_usd",)),
    ("tasks", {"budget": {"max_cost_usd": 1e999}}, ("max_cost_usd",)),
    ("tasks", {"budget": {"max_tokens": 10**400}}, ("max_tokens",)),
    ("tasks", {"budget": {"max_wall_s": 1e999}}, ("max_wall_s",)),
    ("investigations", {"repo": "@REPO@\u0000"}, ()),
    ("investigations", {"bad_ref": "HEAD\u0000"}, ()),
    ("investigations", {"good_ref": "HEAD~1\u0000"}, ()),
    ("investigations", {"reproduce": {"test_command": "pytest\u0000"}}, ()),
    ("investigations", {"reproduce": {"test_id": "tests/x.py::t\u0000"}}, ()),
    ("investigations", {"good_ref": "../../../etc/passwd"}, ("unknown ref",)),
    ("investigations", {"parallel_probes": 0}, ("parallel_probes",)),
    ("investigations", {"parallel_probes": 10**400}, ("parallel_probes",)),
    ("investigations", {"benchmark_runs": 31}, ("benchmark_runs",)),
    ("investigations", {"max_slowdown": 1e999}, ("max_slowdown",)),
    ("investigations", {"kind": "performance"}, ("good_ref",)),
    ("budget", {"max_turns": 0}, ("max_turns",)),
    ("budget", {"max_cost_usd": -0.5}, ("max_cost_usd",)),
    ("budget", {"max_tokens": 10**400}, ()),
    ("budget", {"max_turns": None}, ("at least one",)),
    ("approve", {"by": ""}, ("by",)),
    ("approve", {"by": "x" * 201}, ("by",)),
    ("reject", {"reason": "   "}, ("reason",)),
    ("reject", {"reason": "\u0000"}, ()),
    ("cancel", {"reason": "r" * 2001}, ("reason",)),
    ("fork", {"from_step": "../../etc/passwd"}, ()),
    ("fork", {"max_repair_rounds": 10**400}, ("max_repair_rounds",)),
    ("drift", {"ref": "HEAD\u0000"}, ()),
    ("drift", {"repo": "@REPO@\u0000"}, ()),
    ("drift", {"ref": "../../../etc/passwd"}, ("unknown ref",)),
]


@pytest.mark.parametrize(
    ("endpoint", "change", "mentions"),
    [pytest.param(e, c, m, id=f"{e}-{json.dumps(c)[:60]}") for e, c, m in FIELD_CASES],
)
async def test_nul_bytes_and_numbers_out_of_range_are_refused(
    gate: Gate, endpoint: str, change: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    path, good, _ = ENDPOINTS[endpoint]
    script = gate.fresh_script()
    body = json.loads(gate.fill(json.dumps(good), script))
    body |= json.loads(gate.fill(json.dumps(change), script))
    async with loses_nothing(gate):
        answer = await send(gate, "POST", path, json.dumps(body).encode(), JSON)
        assert_refused(answer, None, mentions)


# --- 3. GET /runs query parameters ---------------------------------------------------------------

LIST_CASES: list[tuple[dict[str, str], int | None]] = [
    ({"page_size": "0"}, 422),
    ({"page_size": "101"}, 422),
    ({"page_size": "-1"}, 422),
    ({"page_size": "1" + "0" * 400}, 422),
    ({"page_size": "ten"}, 422),
    ({"page_size": "NaN"}, 422),
    ({"kind": "../../etc"}, 422),
    ({"status": "running' OR '1'='1"}, 422),
    ({"repo": 'x" OR RatchetRepo != "'}, 422),
    ({"repo": "a\\"}, 422),
    ({"repo": "x" * 2049}, 422),
    ({"query": "((("}, 422),
    ({"query": ") OR (1=1"}, 422),
    ({"query": "x" * 4001}, 422),
    ({"page_token": "!!!not base64"}, 422),
    ({"page_token": "AAAA"}, None),
    ({"page_token": "x" * 4001}, 422),
]


@pytest.mark.parametrize(
    ("params", "status"), [pytest.param(p, s, id=json.dumps(p)[:60]) for p, s in LIST_CASES]
)
async def test_bad_run_list_parameters_are_refused(
    gate: Gate, params: dict[str, str], status: int | None
) -> None:
    started = time.monotonic()
    response = await gate.http.get("/runs", params=params)
    assert_refused(
        Answer(response.status_code, response.content, time.monotonic() - started), status
    )


@pytest.mark.parametrize(
    "query_string",
    [
        "query=WorkflowId%20%3D%20%27x%27)%20OR%20(WorkflowType%20!%3D%20%27y%27",
        "repo=%00",
        "query=%00",
        "repo=%FF%FE",
        "repo=%ED%B3%BF",
        "status=running%00",
    ],
    ids=[
        "query-breaks-out-of-the-and",
        "nul-repo",
        "nul-query",
        "non-utf8-repo",
        "surrogate",
        "nul-status",
    ],
)
async def test_odd_run_list_parameters_never_escape_the_filters_or_fail(
    gate: Gate, query_string: str
) -> None:
    await settled_count(gate.client)  # so at least one workflow that is not a run is visible
    answer = await raw(gate.base_url, f"GET /runs?kind=task&{query_string} HTTP/1.1")
    if answer.status == 200:
        listed = json.loads(answer.body)["runs"]
        assert not [r for r in listed if r["run_id"].startswith("barrier-")], (
            "GET /runs listed workflows that are not Ratchet runs: the query escaped the filters"
        )
        assert all(r["run_id"].startswith("task-") for r in listed), listed
    else:
        assert_refused(answer)


# --- 4. path traversal in run ids, schedule ids, repo memory and artifact refs -------------------

TRAVERSALS: list[tuple[str, str, str]] = [
    ("GET", "/runs/../x", ""),
    ("GET", "/runs/../../etc/passwd", ""),
    ("GET", "/runs/%2e%2e", ""),
    ("GET", "/runs/%2E%2E/patch", ""),
    ("GET", "/runs/..%2Fx", ""),
    ("GET", "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", ""),
    ("GET", "/runs/..%2F..%2Fetc/report", ""),
    ("GET", "/runs/x%00y", ""),
    ("GET", "/runs/task-x%0d%0aSet-Cookie:%20owned=1", ""),
    ("GET", "/runs/.git/plan", ""),
    ("GET", "/runs/" + "a" * 300, ""),
    ("POST", "/runs/%2e%2e/cancel", '{"reason": "x"}'),
    ("POST", "/runs/..%2F..%2Fetc/approve", '{"by": "x"}'),
    ("POST", "/runs/%2e%2e/reject", '{"reason": "x"}'),
    ("POST", "/runs/.git/budget", '{"max_turns": 1}'),
    ("POST", "/runs/%2e%2e/fork", '{"from_step": "base"}'),
    ("POST", "/runs/~/fork", '{"from_step": "base"}'),
    ("GET", "/schedules/%2e%2e", ""),
    ("GET", "/schedules/" + "s" * 2000, ""),
    ("POST", "/schedules/%00/trigger", ""),
    ("DELETE", "/schedules/..%2Fx", ""),
]


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [pytest.param(m, t, b, id=f"{m}-{t[:50]}") for m, t, b in TRAVERSALS],
)
async def test_traversal_in_ids_finds_nothing_and_touches_nothing(
    gate: Gate, method: str, target: str, body: str
) -> None:
    head = (
        f"{method} {target} HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(body)}"
    )
    async with loses_nothing(gate):
        answer = await raw(gate.base_url, head, [body.encode()])
        assert_refused(answer, 404)


@pytest.mark.parametrize(
    "target",
    [
        "/repos/..%2F..%2Fetc%2Fpasswd/memory",
        "/repos/%2e%2e/memory",
        "/repos/~/memory",
        "/repos/%00/memory",
    ],
)
async def test_repo_memory_with_a_traversal_reads_and_writes_nothing(
    gate: Gate, target: str
) -> None:
    async with loses_nothing(gate):
        answer = await raw(gate.base_url, f"GET {target} HTTP/1.1")
        if answer.status == 200:
            assert json.loads(answer.body)["entries"] == []
        else:
            assert_refused(answer)


@pytest.mark.parametrize(
    "ref",
    [
        "../../secret.txt",
        "sha256:../../secret.txt",
        "sha256:" + "a" * 64 + "/../../secret.txt",
        "sha256:../" + "a" * 61,
        "/etc/passwd",
        "sha256:/etc/passwd",
        "sha256:" + "A" * 64,
        "",
        "sha256:\u0000",
    ],
)
def test_artifact_refs_never_become_paths(tmp_path: Path, ref: str) -> None:
    root = tmp_path / "store" / "artifacts"
    store = FilesystemArtifactStore(root)
    kept = store.put(b"kept")
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "store" / "secret.txt").write_text("secret")
    before = files_under(tmp_path)
    with pytest.raises(ArtifactNotFound):
        store.get(ref)
    with pytest.raises(ArtifactNotFound):
        store.exists(ref)
    assert files_under(tmp_path) == before
    assert store.get(kept) == b"kept"


# --- 5. repo paths and URLs out of bounds (SSRF through a repo) ---------------------------------

OUT_OF_BOUNDS: list[tuple[str, str]] = [
    ("file:///etc", "outside the allowed roots"),
    ("/etc", "outside the allowed roots"),
    ("@ROOT@/escape", "outside the allowed roots"),
    ("file://@ROOT@/escape", "outside the allowed roots"),
    ("/tmp/../etc", "outside the allowed roots"),
    ("@ROOT@/../outside/secret", "outside the allowed roots"),
    ("@ROOT@/calc/../../outside/secret", "outside the allowed roots"),
    ("file://@ROOT@/%2e%2e/outside/secret", "outside the allowed roots"),
    ("file://localhost/etc", "outside the allowed roots"),
    ("@OUTSIDE@", "outside the allowed roots"),
    ("calc", "absolute"),
    ("./calc", "absolute"),
    ("~", "absolute"),
    ("~/calc", "absolute"),
    ("http://127.0.0.1:1/x.git", "private"),
    ("http://169.254.169.254/latest", "private"),
    ("git@localhost:x", "private"),
    ("ssh://[::1]/x", "private"),
    ("https://localhost./x.git", "private"),
    ("https://LOCALHOST/x.git", "private"),
    ("https://metadata.google.internal./computeMetadata/v1", "private"),
    ("http://127.1/x.git", "private"),
    ("http://2130706433/x.git", "private"),
    ("http://0.0.0.0/x.git", "private"),
    ("http://[::]/x.git", "private"),
    ("http://[::ffff:127.0.0.1]/x.git", "private"),
    ("http://[fe80::1%25eth0]/x.git", "private"),
    ("git://10.0.0.1/x.git", "private"),
    ("https://192.168.1.1/x.git", "private"),
    ("https://example.com@127.0.0.1/x.git", "private"),
    ("ssh://git@127.0.0.1:22/x.git", "private"),
    ("git@127.0.0.1:x.git", "private"),
    ("https://metadata.google.internal/computeMetadata/v1", "private"),
    ("http:///x.git", "no host"),
    ("ssh://-oProxyCommand=touch%20@OUTSIDE@%2Fpwned/x", ""),
    ("ext::sh -c touch% @OUTSIDE@/pwned", "absolute"),
]
CORE_SSRF = {
    "file:///etc",
    "/etc",
    "@ROOT@/escape",
    "http://127.0.0.1:1/x.git",
    "http://169.254.169.254/latest",
    "git@localhost:x",
    "ssh://[::1]/x",
}


def ssrf_cases() -> list[Any]:
    cases = [
        pytest.param("tasks", repo, reason, id=f"tasks-{repo}") for repo, reason in OUT_OF_BOUNDS
    ]
    for endpoint in ("investigations", "drift"):
        cases += [
            pytest.param(endpoint, repo, reason, id=f"{endpoint}-{repo}")
            for repo, reason in OUT_OF_BOUNDS
            if repo in CORE_SSRF
        ]
    return cases


@pytest.mark.parametrize(("endpoint", "repo", "reason"), ssrf_cases())
async def test_a_repo_out_of_bounds_is_refused_with_the_reason(
    gate: Gate, endpoint: str, repo: str, reason: str
) -> None:
    path, good, _ = ENDPOINTS[endpoint]
    repo = repo.replace("@ROOT@", str(gate.root)).replace("@OUTSIDE@", str(gate.outside_repo))
    body = json.loads(gate.fill(json.dumps(good), gate.fresh_script())) | {"repo": repo}
    async with loses_nothing(gate):
        answer = await send(gate, "POST", path, json.dumps(body).encode(), JSON)
        assert_refused(answer, 422, (reason,) if reason else ())
    assert not (gate.outside_repo.parent / "pwned").exists()


@pytest.mark.parametrize("endpoint", ["tasks", "investigations"])
async def test_a_repo_inside_the_root_is_accepted(gate: Gate, endpoint: str) -> None:
    path, good, _ = ENDPOINTS[endpoint]
    before = await settled_count(gate.client)
    response = await gate.http.post(path, json=json.loads(gate.fill(json.dumps(good))))
    assert response.status_code == 202, response.text
    assert await settled_count(gate.client) == before + 1  # the counting can see a start


async def test_the_gate_does_not_run_what_a_repository_s_config_says(gate: Gate) -> None:
    hostile = make_repo(gate.root / "hostile-config", PY_REPO)
    marker = gate.outside / "fsmonitor-ran"
    with (hostile / ".git" / "config").open("a") as config:
        config.write(f'[core]\n\tfsmonitor = "touch {marker}"\n\thooksPath = {gate.outside}\n')
    good = json.loads(gate.fill(json.dumps(ENDPOINTS["tasks"][1])))
    response = await gate.http.post("/tasks", json=good | {"repo": str(hostile)})
    await settled_count(gate.client)
    assert response.status_code == 202, response.text
    assert not marker.exists()


@pytest.mark.parametrize(
    "script",
    [
        "/etc/passwd",
        "/tmp/../etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
        "relative.toml",
        "~/script.toml",
        "@OUTSIDE@/../../../etc/shadow",
    ],
)
async def test_a_policy_script_that_is_not_a_script_is_refused_without_leaking_it(
    gate: Gate, script: str
) -> None:
    good = json.loads(gate.fill(json.dumps(ENDPOINTS["tasks"][1])))
    body = good | {"policy_script": script.replace("@OUTSIDE@", str(gate.outside))}
    async with loses_nothing(gate):
        answer = await send(gate, "POST", "/tasks", json.dumps(body).encode(), JSON)
        shown = assert_refused(answer, None, ("policy",))
    assert "root:" not in shown and "PATH=" not in shown and TOKEN not in shown


# --- 6. patches that try to write outside the workspace ------------------------------------------

MARK = "owned-by-a-hostile-patch"


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


PATCHES: list[tuple[str, str, str]] = [
    ("dotdot", block("../{name}", "", f"{MARK}\n"), "'..'"),
    ("dotdot-deep", block("tests/../../../{name}", "", f"{MARK}\n"), "'..'"),
    ("dotdot-diff", f"--- /dev/null\n+++ b/../{{name}}\n@@ -0,0 +1 @@\n+{MARK}\n", "'..'"),
    ("backslash", block("..\\{name}", "", f"{MARK}\n"), "'..'"),
    ("rename-out", "*** RENAME calc.py -> ../{name}\n", "'..'"),
    ("etc-passwd", block("/etc/passwd", "", f"{MARK}:x:0:0::/:/bin/sh\n"), "absolute"),
    (
        "git-hook",
        block(".git/hooks/post-commit", "", f"#!/bin/sh\necho {MARK} > {{out}}\n"),
        ".git/",
    ),
    ("symlink-dir", block("escape/{name}", "", f"{MARK}\n"), "symlink"),
    ("symlink-file", block("leak", "safe\n", f"{MARK}\n"), "symlink"),
]


@dataclass
class Runner:
    http: httpx.AsyncClient
    client: Client
    settings: Settings


@pytest_asyncio.fixture(scope="module")
async def runner(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_target: str,
    tracer_provider: TracerProvider,
) -> AsyncIterator[Runner]:
    """The app with a worker, on a namespace of its own: runs really run."""
    namespace = _free_namespaces.pop(0)
    client = await Client.connect(temporal_target, namespace=namespace)
    home = tmp_path_factory.mktemp("hostile-runner") / "home"
    settings = make_settings(home, temporal_target, namespace=namespace)
    app = create_app(settings, client=client, tracer_provider=tracer_provider)
    async with (
        build_worker(client, settings),
        serve_app(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield Runner(http, client, settings)


@dataclass
class Launched:
    run: dict[str, Any] | None
    problem: str
    """Why there is no finished run to look at."""
    tmp: Path
    name: str
    transcript: dict[str, Any] | None = None


@dataclass
class Runs:
    patches: dict[str, Launched]
    passwd: bytes


async def launch(runner: Runner, tmp: Path, patch: str) -> Launched:
    """A scripted run on a repository with symlinks that lead outside it, awaited."""
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("safe\n")
    repo = make_repo(tmp / "calc", PY_REPO)
    (repo / "escape").symlink_to(outside)
    (repo / "leak").symlink_to(outside / "target.txt")
    commit(repo, {}, "links that lead outside")
    name = f"hostile-{uuid.uuid4().hex[:8]}.txt"
    patch = patch.replace("{name}", name).replace("{out}", str(outside / name))
    script = write_script(tmp / "script.toml", [patch])
    body = {
        "repo": str(repo),
        "goal": "add mul",
        "policy": "scripted",
        "policy_script": str(script),
        "test_command": "true",  # the patch is the point: keep the baseline cheap
    }
    response = await runner.http.post("/tasks", json=body)
    if response.status_code != 202:
        return Launched(None, response.text, tmp, name)
    run_id = response.json()["run_id"]
    try:
        run = await wait_for_end(runner.http, run_id, timeout_s=120)
    except AssertionError as err:
        return Launched(None, str(err), tmp, name)
    transcript = (await runner.http.get(f"/runs/{run_id}/transcript")).json()
    return Launched(run, "", tmp, name, transcript)


@pytest_asyncio.fixture(scope="module")
async def runs(runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every hostile patch's run, started together (each takes seconds) and awaited."""
    passwd = Path("/etc/passwd").read_bytes()
    launched = await asyncio.gather(
        *(launch(runner, tmp_path_factory.mktemp(f"patch-{n}"), p) for n, p, _ in PATCHES),
    )
    patches = {n: run for (n, _, _), run in zip(PATCHES, launched, strict=True)}
    return Runs(patches, passwd)


@pytest.mark.parametrize(("case", "reason"), [pytest.param(n, r, id=n) for n, _, r in PATCHES])
async def test_a_patch_that_writes_outside_the_workspace_is_refused_and_writes_nothing(
    runner: Runner, runs: Runs, case: str, reason: str
) -> None:
    launched = runs.patches[case]
    assert launched.run is not None, launched.problem
    run, name = launched.run, launched.name
    # The refusal is the tool's answer to the model (which may try again); nothing was
    # written, so no round changes anything and the run never verifies or delivers.
    assert run["status"] == "failed", run
    assert launched.transcript is not None
    (applied,) = launched.transcript["conversations"][0]["turns"][0]["calls"]
    assert applied["tool"] == "apply_patch" and applied["is_error"], applied
    assert "nothing was written" in applied["result"] and reason in applied["result"], applied
    assert (run["result"] or {}).get("patch_url") is None
    for where in (launched.tmp, runner.settings.home):
        assert not list(where.rglob(name)), f"the patch wrote {name} outside the workspace"
    assert not list(Path("/tmp").glob(name))
    outside = launched.tmp / "outside"
    assert (outside / "target.txt").read_text() == "safe\n"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    assert Path("/etc/passwd").read_bytes() == runs.passwd
    hooks = [*launched.tmp.rglob("post-commit"), *runner.settings.home.rglob("post-commit")]
    assert not [p for p in hooks if MARK in p.read_text()]


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        pytest.param({"goal": "g" * 1_000_000}, ("limit",), id="megabyte-goal"),
        pytest.param({"from_step": "../../../etc/passwd"}, ("no snapshot",), id="step-traversal"),
        pytest.param({"from_step": "base\u0000"}, ("NUL",), id="nul-step"),
        pytest.param({"policy_script": "/etc/passwd"}, ("policy",), id="script-etc-passwd"),
        pytest.param({"policy_script": "@SCRIPT@\u0000"}, ("NUL",), id="nul-script"),
        pytest.param({"goal": "add mul\u0000"}, (), id="nul-goal"),
        pytest.param({"max_repair_rounds": 21}, ("max_repair_rounds",), id="rounds-over"),
        pytest.param({"surprise": 1}, ("surprise",), id="unknown-field"),
    ],
)
async def test_a_fork_with_hostile_input_is_refused(
    runner: Runner, runs: Runs, change: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    source = runs.patches["git-hook"]  # a refused run still has its base snapshot
    assert source.run is not None, source.problem
    assert "base" in source.run["snapshots"], source.run
    script = str(source.tmp / "script.toml")
    change = {
        k: v.replace("@SCRIPT@", script) if isinstance(v, str) else v for k, v in change.items()
    }
    # Other runs' files come and go in the home: what a refusal could write is an artifact.
    before, files = await settled_count(runner.client), files_under(runner.settings.artifacts_dir)
    started = time.monotonic()
    forked = await runner.http.post(
        f"/runs/{source.run['run_id']}/fork", json={"from_step": "base"} | change
    )
    answer = Answer(forked.status_code, forked.content, time.monotonic() - started)
    if forked.status_code == 202:  # a wrongly accepted fork must not run on into other cases
        await runner.client.get_workflow_handle(forked.json()["run_id"]).terminate("hostile")
    assert_refused(answer, None, mentions)
    assert files_under(runner.settings.artifacts_dir) == files
    assert await settled_count(runner.client) == before
