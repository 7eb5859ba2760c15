"""The server's lanes (bestofn.serve.batching.Lane): when a job waits for a call in progress and when its own call
starts beside it. Scripted calls that block until the test releases them; work in made-up units, by hand.

The rule: a job waits only while some call in progress has no more work left than the job's own (then it joins
the next merged call, at the price of at most its own work); otherwise its call starts at once.
"""

from __future__ import annotations

import threading
import time

from bestofn.serve.batching import Call, Lane, Stats, Ticket


class Script:
    """A lane's plan/run/cost: every call blocks until ``release(name)``; ``done`` is what a call reports done."""

    def __init__(self, done: dict[str, float] | None = None):
        self.started: list[list[str]] = []  # the job names of each call, in the order the calls started
        self.gates: dict[str, threading.Event] = {}
        self.done = done or {}
        self.lock = threading.Lock()

    def plan(self, jobs):
        return [jobs]  # every job that starts together merges into one call

    @staticmethod
    def cost(jobs):
        return float(max(job.args["work"] for job in jobs))

    def run(self, jobs, call: Call) -> None:
        names = [job.args["name"] for job in jobs]
        if names[0] in self.done:
            call.done = self.done[names[0]]
        with self.lock:
            self.started.append(names)
            gate = self.gates.setdefault(names[0], threading.Event())
        gate.wait(10)
        for job in jobs:
            job.future.set_result(job.args["name"])

    def release(self, name: str) -> None:
        with self.lock:
            self.gates.setdefault(name, threading.Event()).set()


def submit(lane: Lane, name: str, work: float) -> threading.Thread:
    thread = threading.Thread(target=lane.submit, args=(Ticket(),), kwargs={"name": name, "work": work})
    thread.start()
    return thread


def wait_until(condition, seconds: float = 5.0) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.01)
    return False


def lane_for(script: Script) -> tuple[Lane, Stats]:
    stats = Stats()
    return Lane("test", script.plan, script.run, script.cost, window_s=0.01, stats=stats), stats


def test_a_short_job_starts_beside_a_long_call():
    script = Script()
    lane, stats = lane_for(script)
    try:
        long = submit(lane, "long", 1000)
        assert wait_until(lambda: script.started == [["long"]])
        short = submit(lane, "short", 10)  # 1000 units left > 10 of its own: it must not wait
        assert wait_until(lambda: ["short"] in script.started)
        script.release("short")
        short.join(5)
        assert not short.is_alive() and long.is_alive()  # answered while the long call still runs
        assert stats.most_concurrent_calls == 2
    finally:
        script.release("long")
        lane.close()


def test_jobs_wait_for_a_call_that_ends_within_their_own_work_and_then_merge():
    script = Script()
    lane, stats = lane_for(script)
    try:
        first = submit(lane, "first", 10)
        assert wait_until(lambda: script.started == [["first"]])
        # 10 units left (nothing reported done, no rate measured yet): not more than 10 or 12 of their own
        a, b = submit(lane, "a", 10), submit(lane, "b", 12)
        time.sleep(0.3)
        assert script.started == [["first"]]  # both wait
        script.release("first")
        assert wait_until(lambda: len(script.started) == 2)
        assert sorted(script.started[1]) == ["a", "b"]  # and run as one merged call
        script.release(script.started[1][0])
        a.join(5), b.join(5)
        assert not a.is_alive() and not b.is_alive() and stats.most_concurrent_calls == 1
    finally:
        for name in ("first", "a", "b"):
            script.release(name)
        lane.close()


def test_the_work_a_call_reports_done_decides():
    # A call of 100 units that reports 95 done has 5 left: a job of 10 waits for it.
    script = Script(done={"nearly": 95.0, "halfway": 80.0})
    lane, _ = lane_for(script)
    try:
        submit(lane, "nearly", 100)
        assert wait_until(lambda: script.started == [["nearly"]])
        submit(lane, "waits", 10)
        time.sleep(0.3)
        assert script.started == [["nearly"]]
        script.release("nearly")
        assert wait_until(lambda: script.started[-1] == ["waits"])
        script.release("waits")
        # One that reports 80 done has 20 left: a job of 10 starts beside it at once.
        submit(lane, "halfway", 100)
        assert wait_until(lambda: script.started[-1] == ["halfway"])
        submit(lane, "beside", 10)
        assert wait_until(lambda: script.started[-1] == ["beside"])
    finally:
        for name in ("nearly", "waits", "halfway", "beside"):
            script.release(name)
        lane.close()


def test_a_calls_remaining_work():
    assert Call(work=100, done=30).remaining(rate=None) == 70
    assert Call(work=100, done=130).remaining(rate=None) == 0
    assert Call(work=100).remaining(rate=None) == 100  # reports nothing, no rate yet: all of it
    started = time.monotonic() - 2.0
    left = Call(work=100, started=started).remaining(rate=10.0)  # ~2 s at 10 units/s: ~20 done
    assert 75 <= left <= 80
