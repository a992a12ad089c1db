"""One `Settings`, read from the environment once at start-up by each process."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of Ratchet; the variables are `RATCHET_<FIELD>` unless noted."""

    # env_ignore_empty: compose and Kubernetes pass an unset optional secret as "", which must
    # read as unset (an empty webhook secret would let anyone sign).
    model_config = SettingsConfigDict(
        env_prefix="RATCHET_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    home: Path = Field(default=Path(".ratchet"))
    """Ratchet's state: Temporal's database, mirrors, workspaces, artifacts, traces."""
    artifacts_url: str | None = None
    """`file:///path` or `s3://bucket/prefix` (ratchet/stores.py); default: the home's."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    """Port of the embedded dev server (ignored when TEMPORAL_ADDRESS is set)."""
    ui_port: int = 8233
    ui_url: str | None = None
    """Base URL of the Temporal UI; defaults to the dev server's UI on 127.0.0.1."""

    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "RATCHET_TEMPORAL_ADDRESS")
    )
    """An existing Temporal cluster (host:port); when set, `ratchet up` starts no dev server."""
    namespace: str = Field(
        default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "RATCHET_NAMESPACE")
    )
    task_queue: str = "ratchet"
    """Workflows and light activities (git, artifacts, gates)."""
    model_task_queue: str | None = None
    """Model calls (plan, patch, roles, agent turns); default: task_queue."""
    sandbox_task_queue: str | None = None
    """Sandboxed runs of repository code (tests, lint, probes, agent tools); default: task_queue."""
    worker_queues: str | None = None
    """Comma list of the queues this worker polls (RATCHET_WORKER_QUEUES); default: all three."""
    max_concurrent_activities: int = Field(default=8, ge=1, le=1000)
    """Per queue polled by a worker: keep sandboxed runs near the cores you have."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes `ratchet up` runs (RATCHET_WORKERS, `--workers`). Above one, each has a
    home of its own, `$RATCHET_HOME/workers/<n>`: they share only Temporal and the artifact
    store, the shape of workers on separate machines."""

    api_token: SecretStr | None = None
    """Bearer token for the API; generated once into $RATCHET_HOME/api-token when unset."""

    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    anthropic_model: str = "claude-sonnet-5-5"
    anthropic_max_tokens: int = 8192
    anthropic_temperature: float | None = None
    """Sent only when set, and only to models that take one (Opus/Sonnet 4.6, Haiku 4.5 and
    older): newer models refuse a sampling temperature."""
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per role ("plan", "code", "refactor"): {"model", "max_tokens", "temperature"} overriding the
    anthropic_* defaults. RATCHET_MODELS as JSON."""
    model_prices: dict[str, tuple[float, float, float, float]] = Field(default_factory=dict)
    """USD per million tokens (input, output, cache write, cache read) by exact model id.
    RATCHET_MODEL_PRICES (JSON) adds to and overrides the dated built-in table
    (agents/ledger.py), so prices change without a release; a model in neither is counted with
    "price unknown"."""
    openai_base_url: str | None = None
    """An OpenAI-compatible server (vLLM, Ollama, llama.cpp) for policy "openai-compatible",
    e.g. http://127.0.0.1:11434/v1."""
    openai_api_key: SecretStr | None = None
    openai_model: str = "local-model"
    openai_max_tokens: int = 4096
    model_retry_initial_s: float = Field(default=2.0, gt=0)
    model_retry_max_s: float = Field(default=120.0, gt=0)
    """The longest wait between two tries of a model call while the API is overloaded."""
    agent_turns_per_execution: int = Field(default=40, ge=1)
    """The agent loop continues-as-new after this many turns (Temporal history stays small)."""

    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    """When set, spans go to this OTLP/HTTP collector instead of $RATCHET_HOME/traces.jsonl."""

    max_repair_rounds: int = Field(default=3, ge=0, le=20)
    """How many times a patch that fails verification goes back to the policy with the failure."""
    test_timeout_s: float = Field(default=600.0, gt=0)
    heartbeat_timeout_s: float = Field(default=30.0, gt=0)
    """A step that stops heartbeating for this long (a dead worker) is retried elsewhere."""
    require_sandbox: bool = False
    """RATCHET_REQUIRE_SANDBOX=1: refuse to run repository code when no sandbox works here."""
    sandbox: str = "auto"
    """"auto" uses bubblewrap when it works; "none" never sandboxes (trusted code only)."""
    sandbox_memory_mb: int = Field(default=4096, ge=64)
    sandbox_max_processes: int = Field(default=512, ge=8)
    sandbox_cpu_seconds: int = Field(default=1200, ge=1)
    flaky_reruns: int = Field(default=1, ge=0, le=5)
    """How many times failing tests are re-run to tell a flaky test from a real failure."""
    env_allowed_hosts: str | None = None
    """RATCHET_ENV_ALLOWED_HOSTS: hosts an environment build may reach (JSON list or commas;
    `host`, `*.domain`, `host:port`); default: the indexes pip and npm are configured with."""
    env_timeout_s: float = Field(default=1800.0, gt=0)
    """Wall-clock limit of one setup command of an environment build."""
    tool_timeout_s: float = Field(default=300.0, gt=0)
    """Wall-clock limit of one `bash` tool call of the agent (its process group is killed)."""

    sentry_client_secret: SecretStr | None = None
    """The Sentry integration's client secret: webhooks signed with anything else get 401."""
    sentry_projects: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Sentry project slug (or id) → {"repo": path or URL, "test_command"?, "good_ref"?}."""
    sentry_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    parallel_probes: int = Field(default=3, ge=1, le=16)
    reproducer_attempts: int = Field(default=3, ge=1, le=10)
    """Tries the policy gets to write a test that fails the way a production error did."""
    """Bisection probes run at once (k of the k-way multisection)."""
    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_TOKEN", "RATCHET_GITHUB_TOKEN")
    )
    """A token that may push `ratchet/*` branches and open pull requests; with it, a run on a
    repository that has a remote is delivered there as a draft pull request."""
    github_api_url: str = "https://api.github.com"
    trace_url: str | None = None
    """A trace UI's page for one trace, with `{trace_id}`: linked from pull requests, e.g.
    http://127.0.0.1:16686/trace/{trace_id} (Jaeger) or
    http://127.0.0.1:6006/redirects/traces/{trace_id} (Phoenix)."""
    """GitHub's REST API (GitHub Enterprise: https://HOST/api/v3)."""
    repo_roots: list[Path] = Field(default_factory=list)
    """Local repositories (paths and file:// URLs) must lie under one of these; JSON list, e.g.
    RATCHET_REPO_ROOTS='["/srv/repos"]'. Empty: any absolute path the server can read."""
    allow_private_repo_hosts: bool = False
    """Let repo URLs name this machine or a private network (an internal Git server)."""
    max_goal_chars: int = 20_000
    max_script_bytes: int = 1_000_000

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Every process (API, worker, CLI) must agree on the same directory whatever its cwd.
        return value.expanduser().resolve()

    @property
    def queues(self) -> tuple[str, str, str]:
        """(main, model, sandbox) task queues."""
        main = self.task_queue
        return main, self.model_task_queue or main, self.sandbox_task_queue or main

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def ui_base(self) -> str:
        return (self.ui_url or f"http://127.0.0.1:{self.ui_port}").rstrip("/")

    @property
    def api_base(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def artifacts_location(self) -> str:
        """Where artifacts live: RATCHET_ARTIFACTS_URL, else the home's artifacts directory."""
        return self.artifacts_url or self.artifacts_dir.resolve().as_uri()

    @property
    def traces_file(self) -> Path:
        return self.home / "traces.jsonl"

    def worker_home(self, n: int) -> Path:
        return self.home / "workers" / str(n)

    def local_traces(self) -> list[Path]:
        """This home's span file and those of the workers `ratchet up --workers` ran in it."""
        return [self.traces_file, *sorted(self.home.glob("workers/*/traces.jsonl"))]

    def role_model(self, role: str) -> tuple[str, int, float | None]:
        """(model, max_tokens, temperature) for a role, from `models` or the defaults."""
        chosen = self.models.get(role, {})
        return (
            str(chosen.get("model", self.anthropic_model)),
            int(chosen.get("max_tokens", self.anthropic_max_tokens)),
            chosen.get("temperature", self.anthropic_temperature),
        )

    def secret_values(self) -> list[str]:
        """Every secret this process holds, for the scrubber of spans, logs and artifacts."""
        held = [self.anthropic_api_key, self.openai_api_key, self.sentry_client_secret,
                self.github_token]  # fmt: skip
        values = [s.get_secret_value() for s in held if s is not None]
        # The object store's key, when it comes from the environment (the AWS chain's first).
        values += [v for v in (os.environ.get("AWS_SECRET_ACCESS_KEY"),) if v]
        if self.api_token is not None or (self.home / "api-token").exists():
            values.append(self.token)
        return values

    def trace_page(self, trace_id: str) -> str | None:
        return self.trace_url.replace("{trace_id}", trace_id) if self.trace_url else None

    def workflow_ui_url(self, workflow_id: str) -> str:
        return f"{self.ui_base}/namespaces/{self.namespace}/workflows/{workflow_id}"

    @cached_property
    def token(self) -> str:
        """The API token: RATCHET_API_TOKEN, else the one kept in $RATCHET_HOME/api-token."""
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        return _stored_token(self.home / "api-token")


def _stored_token(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when the API, the worker and the CLI start together only one token is ever made.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def load_settings() -> Settings:
    return Settings()
