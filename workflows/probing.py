"""The probes of an investigation: each tests one commit in its own workspace slot; a round runs
k of them in parallel. The bad commit is confirmed first; without a good_ref, ancestors at
doubling distances are probed until one passes; then the multisection narrows the range.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import investigation as inv
    from contracts import planner
    from contracts.bisect import Doubling, Multisection
    from contracts.investigation import InvestigationInput, InvPrepared
    from contracts.planner import ProbePlan
    from workflows.reproducer import Reproducer
    from workflows.steps import Steps


class Prober:
    def __init__(self, steps: Steps, reproducer: Reproducer) -> None:
        self._steps, self._reproducer = steps, reproducer
        self.records: list[inv.ProbeRecord] = []
        self.reference: str | None = None
        """Performance mode: the good commit every probe measures itself against."""
        self.rounds = 0
        """The rounds of the planned search: a probe's round is one more than the highest
        round among the results known when it started."""

    async def probe(self, inp: InvestigationInput, prep: InvPrepared, sha: str, slot: int,
                    round_: int, reruns: int = 1) -> inv.ProbeResult:  # fmt: skip
        runs = inp.benchmark_runs if inp.kind == "performance" else 1
        files = self._reproducer.files or inp.reproduction_files
        arg = inv.ProbeInput(prep.run, sha, prep.reproduce, inp.kind, slot, inp.test_timeout_s,
                             runs, reference=self.reference, max_slowdown=inp.max_slowdown,
                             files=files, reruns=reruns)  # fmt: skip
        result = await self._steps.step(
            "probe", inv.PROBE, arg, inv.ProbeResult, round_=round_,
            limit=timedelta(seconds=(inp.test_timeout_s + 60) * runs + 60),
        )  # fmt: skip
        self.records.append(inv.ProbeRecord(round_, sha, result.outcome, result.detail))
        return result

    async def probe_all(self, inp: InvestigationInput, prep: InvPrepared, shas: list[str],
                        round_: int, bisection: Multisection) -> list[inv.ProbeResult]:  # fmt: skip
        """One round: the probes run in parallel, each in its own workspace slot; the
        bisection records what they found."""
        found = await asyncio.gather(*(
            self.probe(inp, prep, sha, slot, round_) for slot, sha in enumerate(shas)
        ))  # fmt: skip
        for result in found:
            bisection.record(result.sha, result.outcome)
        return list(found)

    async def confirm(self, inp: InvestigationInput, prep: InvPrepared,
                      times: int = 2, reruns: int = 1) -> inv.ProbeResult | None:  # fmt: skip
        """Confirm the problem at the bad commit, twice (unless the search confirms it again
        beside its probes), so a flaky failure is not bisected: None when it shows, else the
        probe that did not show it."""
        for attempt in range(1 if inp.kind == "performance" else times):
            seen = await self.probe(inp, prep, prep.run.base_sha, attempt, 0, reruns)
            if seen.outcome != "bad":
                return seen
        return None

    async def bisect(self, inp: InvestigationInput, prep: InvPrepared,
                     bisection: Multisection, rounds: int) -> int:  # fmt: skip
        """Narrow the range to the first bad commit; the rounds it took, in all."""
        while not bisection.done():
            rounds += 1
            await self.probe_all(inp, prep, bisection.next_probes(), rounds, bisection)
        return rounds

    async def find_good(self, inp: InvestigationInput, prep: InvPrepared,
                        bisection: Multisection, *, latent_ok: bool) -> int:  # fmt: skip
        """The rounds it took to find a good commit (the range then starts there). -1 when
        `latent_ok` and the problem shows at every commit probed back to the first (or at the
        good_ref): a latent bug."""
        commits = bisection.commits
        if prep.good_sha is not None:
            if self.reference is None:  # the performance reference is good by definition
                first = await self.probe(inp, prep, commits[0], 0, 0)
                if first.outcome == "bad" and latent_ok:
                    return -1
                if first.outcome != "good":
                    raise self.good_ref_fails(commits[0], first.outcome, first.detail)
            bisection.record(commits[0], "good")
            return 0
        doubling, rounds = Doubling(commits, bisection.k), 0
        while picks := doubling.next_probes(bisection.results):
            rounds += 1
            results = await self.probe_all(inp, prep, picks, rounds, bisection)
            goods = [commits.index(r.sha) for r in results if r.outcome == "good"]
            if goods:  # narrow the range to start at the nearest good ancestor
                bisection.commits = commits[max(goods) :]
                return rounds
        if latent_ok and bisection.results.get(commits[0]) == "bad":
            return -1
        raise self._steps.fail("NoGoodCommit", f"no commit in the last {len(commits)} passes")

    async def search(
        self, inp: InvestigationInput, prep: InvPrepared, bisection: Multisection,
        checks: list[str], rounds: int,
    ) -> tuple[str, inv.ProbeResult] | None:  # fmt: skip
        """The planned search (contracts/planner.py), after `rounds` rounds of finding a good
        commit: up to k (the bisection's) probes at once, a new one as each ends, the checks
        beside them; the probes that cannot change the culprit are cancelled. A check that did
        not hold stops it: its kind (CONFIRM, GOOD) and probe."""
        plan, cores = ProbePlan(bisection, list(checks), round=rounds), bisection.k
        flying: dict[int, asyncio.Task[inv.ProbeResult]] = {}
        keys = iter(range(1 << 30))
        try:
            while not plan.determined():
                for pick in plan.picks(cores - len(flying)):
                    key = next(keys)  # the probe's slot too: its workspace comes from a pool
                    plan.started(key, pick)
                    flying[key] = asyncio.ensure_future(
                        self.probe(inp, prep, pick.sha, key, pick.round, reruns=0)
                    )
                if not flying:  # nothing left to probe and nothing running: the verdict
                    break
                done, _ = await workflow.wait(flying.values(), return_when=asyncio.FIRST_COMPLETED)
                for key in [k for k, task in flying.items() if task in done]:
                    found = flying.pop(key).result()
                    if (contradiction := plan.finished(key, found.outcome)) is not None:
                        return contradiction.pick.purpose, found
                for key in plan.drop_moot():
                    flying.pop(key).cancel()
            self.rounds = plan.round
            return None
        finally:
            for task in flying.values():
                task.cancel()

    def good_ref_fails(self, sha: str, outcome: str, detail: str) -> Exception:
        why = f"{sha[:12]} is not good: {outcome} ({detail})"
        return self._steps.fail("GoodRefFails", f"good_ref {why}")

    async def history_and_cores(self, inp: InvestigationInput,
                                arg: inv.HistoryInput) -> tuple[inv.History, int]:  # fmt: skip
        """The commits to search, and the cores free to probe them (side by side)."""
        queue = inp.queues.sandbox or workflow.info().task_queue
        free = inv.CapacityInput(inp.run_id, queue)
        history, capacity = await asyncio.gather(
            self._steps.step("history", inv.HISTORY, arg, inv.History),
            self._steps.step("capacity", inv.CAPACITY, free, inv.Capacity),
        )
        return history, capacity.free

    async def planned(self, inp: InvestigationInput, prep: InvPrepared, bisection: Multisection,
                      confirmations: int, *, latent_ok: bool) -> int:  # fmt: skip
        """The rounds the planned search took to name the culprit (-1: a latent bug), with
        `confirmations` of the bad commit still to run; without a good ref, the doubling rounds
        find one first."""
        checks, rounds = [planner.CONFIRM] * confirmations, 0
        if prep.good_sha is None:
            rounds = await self.find_good(inp, prep, bisection, latent_ok=latent_ok)
            if rounds < 0:
                return rounds
        elif self.reference is None:  # first: a wrong good ref is the likelier slip
            checks.insert(0, planner.GOOD)
        else:  # the performance reference is good by definition
            bisection.record(bisection.commits[0], "good")
        stopped = await self.search(inp, prep, bisection, checks, rounds)
        if stopped is None:
            return self.rounds
        kind, seen = stopped
        if kind == planner.CONFIRM:
            raise self._steps.fail("NotReproduced", seen.not_reproduced(policy_could_write=False))
        if seen.outcome == "bad" and latent_ok:
            return -1
        raise self.good_ref_fails(seen.sha, seen.outcome, seen.detail)
