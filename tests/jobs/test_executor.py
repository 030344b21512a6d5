"""The worker pool: models loaded once per worker, a crash or hang costs only its own task."""

import pytest

from faces.jobs.executor import WorkerPool, WorkerStartError


def test_crash_on_one_task_fails_only_that_task():
    tasks = [(i, p) for i, p in enumerate(["a", "b", "segfault", "c", "memory", "d", "boom", "e"])]
    with WorkerPool(2, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init", ("ready",)) as pool:
        outcomes = {o.key: o for o in pool.run(tasks)}
    assert sorted(outcomes) == list(range(len(tasks)))
    assert outcomes[2].crashed and not outcomes[2].ok and "SIGSEGV" in outcomes[2].error
    assert not outcomes[4].ok and outcomes[4].error == "ran out of memory" and not outcomes[4].crashed
    assert not outcomes[6].ok and "bad pixel" in outcomes[6].error
    good = [outcomes[k] for k in (0, 1, 3, 5, 7)]
    assert all(o.ok and o.result[0] == "ready" for o in good)
    assert [o.result[2] for o in good] == ["aa", "bb", "cc", "dd", "ee"]
    # the initializer ran once per worker process: at most 2 workers + 1 replacement for the crash
    assert len({o.result[1] for o in good}) <= 3


def test_hanging_task_is_stopped_after_the_timeout():
    with WorkerPool(1, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init", ("x",), task_timeout=2) as pool:
        outcomes = {o.key: o for o in pool.run([(0, "hang"), (1, "ok")])}
    assert outcomes[0].crashed and "longer than 2 s" in outcomes[0].error
    assert outcomes[1].ok and outcomes[1].result[2] == "okok"


def test_initializer_failure_stops_with_its_reason():
    with pytest.raises(WorkerStartError, match="model file missing"):
        with WorkerPool(1, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init_fails", ("x",)) as pool:
            list(pool.run([(0, "a")]))


def test_worker_dying_while_starting_stops_the_run_instead_of_failing_every_task():
    with pytest.raises(WorkerStartError, match="while starting"):
        with WorkerPool(2, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init_dies", ("x",)) as pool:
            list(pool.run([(0, "a"), (1, "b"), (2, "c")]))


def test_a_pool_started_small_grows_when_there_is_more_work():
    with WorkerPool(2, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init", ("x",)).start(1) as pool:
        pool.wait_until_started()  # (started on a background thread)
        assert len(pool.workers) == 1  # one file given: one worker loads its models
        outcomes = {o.key: o for o in pool.run([(0, "a")])}
        assert len(pool.workers) == 1 and outcomes[0].result[2] == "aa"
        outcomes = {o.key: o for o in pool.run([(i, "b") for i in range(6)])}  # work left from before
        assert len(pool.workers) == 2 and all(o.ok for o in outcomes.values())


def test_outcomes_that_finish_together_come_together():
    with WorkerPool(2, "tests.jobs.workfuncs:work", "tests.jobs.workfuncs:init", ("x",)) as pool:
        batches = list(pool.run_batches([(i, "c") for i in range(5)]))
    assert sorted(o.key for batch in batches for o in batch) == list(range(5))
    assert all(batch for batch in batches)
