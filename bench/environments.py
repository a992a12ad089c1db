"""What an environment costs: a cache hit (the key from the key files, then a lookup) next to the
smallest sandboxed step (`true`) and a one-test pytest run in the same environment, measured
side by side; the build of the default environment; and the build of a real project's pinned
requirements from the package registry (network allowed here, through the egress proxy).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gym.allowlist import Allowlist
from gym.envdef import EnvDefinition, definition_for, key_for
from gym.environments import EnvironmentBuildFailed, Environments, interpreter_id
from gym.indexes import default_allowed_hosts
from gym.runner import Limits, run_command
from gym.sandbox import BwrapSandbox
from gym.testing import run_tests
from tests.utils.repos import make_repo

RESULTS = Path(__file__).parent / "results"
REPEATS = 15
# A real project's pinned requirements (httpx and what it needs: six distributions).
REAL = "httpx==0.27.2\nanyio==4.6.2\nhttpcore==1.0.6\nh11==0.14.0\nsniffio==1.3.1\nidna==3.10\n"
REAL_TEST = "import httpx\n\n\ndef test_client():\n    assert httpx.Client().timeout.read == 5\n"


async def median_ms(action: Callable[[], Awaitable[object]], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


async def measure(root: Path) -> dict[str, object]:
    repo = make_repo(root / "app", {
        "requirements.txt": REAL,
        "tests/test_one.py": "def test_one():\n    assert 1 + 1 == 2\n",
    })  # fmt: skip
    envs = Environments(root / "home")
    sandbox = BwrapSandbox()
    default = EnvDefinition((), ("requirements.txt",), "default")

    async def workspace(key: str) -> Path:
        return repo

    started = time.perf_counter()
    env = await envs.for_workspace(str(repo), repo, default, workspace, sandbox=sandbox,
                                   limits=Limits(timeout_s=300), allowlist=Allowlist())  # fmt: skip
    default_build_s = round(time.perf_counter() - started, 3)
    inside = sandbox.with_environment(env.path)

    async def cache_hit() -> None:
        key = key_for(str(repo), repo, default, interpreter_id(), sandbox.name)
        assert envs.lookup(key, default) is not None

    async def step_true() -> None:
        await run_command("true", repo, sandbox=inside, limits=Limits(timeout_s=60))

    async def step_pytest() -> None:
        await run_tests("python -m pytest -q", repo, sandbox=inside, limits=Limits(timeout_s=60))

    # In turns, so a burst of slowness of the machine falls on all three alike.
    hit, true, pytest = [], [], []
    for _ in range(3):
        hit.append(await median_ms(cache_hit, REPEATS * 4))
        true.append(await median_ms(step_true))
        pytest.append(await median_ms(step_pytest, 5))
    return {
        "default_build_s": default_build_s,
        "cache_hit_ms": statistics.median(hit),
        "sandboxed_true_ms": statistics.median(true),
        "sandboxed_pytest_ms": statistics.median(pytest),
        "real": await real_project(root, repo),
    }


async def real_project(root: Path, repo: Path) -> dict[str, object]:
    """The registry's own packages, cold (an empty pip cache), then the same key again."""
    definition = definition_for(repo, requested_setup=None, requested_key_files=None,
                                toml_setup=None, toml_key_files=None)  # fmt: skip
    (repo / "tests" / "test_real.py").write_text(REAL_TEST)
    envs = Environments(root / "home-real")
    allowlist = Allowlist.of(*default_allowed_hosts())

    async def workspace(key: str) -> Path:
        return repo

    try:
        started = time.perf_counter()
        env = await envs.for_workspace(str(repo), repo, definition, workspace,
                                       sandbox=BwrapSandbox(), limits=Limits(timeout_s=900),
                                       allowlist=allowlist)  # fmt: skip
        cold_s = round(time.perf_counter() - started, 3)
    except EnvironmentBuildFailed as err:
        return {"skipped": f"the build failed (no registry here?): {str(err)[:300]}"}
    started = time.perf_counter()
    again = await envs.for_workspace(str(repo), repo, definition, workspace,
                                     sandbox=BwrapSandbox(), limits=Limits(timeout_s=900),
                                     allowlist=allowlist)  # fmt: skip
    hit_ms = round((time.perf_counter() - started) * 1000, 2)
    run = await run_tests("python -m pytest -q", repo, limits=Limits(timeout_s=120),
                          sandbox=BwrapSandbox().with_environment(env.path))  # fmt: skip
    return {
        "setup": list(definition.setup), "source": definition.source, "cold_build_s": cold_s,
        "cache_hit_ms": hit_ms, "cache_hit": again.cache_hit, "egress": env.egress,
        "suite": {"passed": run.count("passed"), "failed": run.count("failed")},
    }  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-envs-") as root:
        results = asyncio.run(measure(Path(root)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "environments.json").write_text(json.dumps(results, indent=2) + "\n")
    real = results["real"]
    assert isinstance(real, dict)
    print("| what | median |\n|---|---:|")
    print(f"| cache hit (key from the key files + lookup) | {results['cache_hit_ms']} ms |")
    print(f"| sandboxed `true` in the environment (the smallest step) | "
          f"{results['sandboxed_true_ms']} ms |")  # fmt: skip
    print(f"| sandboxed one-test pytest run | {results['sandboxed_pytest_ms']} ms |")
    print(f"| build of the default environment (venv + seeded pytest) | "
          f"{results['default_build_s']} s |")  # fmt: skip
    if "skipped" in real:
        print(f"| real project from the registry | skipped: {real['skipped']} |")
    else:
        print(f"| real project ({real['source']}: httpx and 5 more), cold build | "
              f"{real['cold_build_s']} s |")  # fmt: skip
        print(f"| the same key again (cache hit) | {real['cache_hit_ms']} ms |")
        print(f"| its suite in that environment | {real['suite']} |")


if __name__ == "__main__":
    main()
