"""Detection spread over Celery workers gives exactly the faces of the in-process executor, also when a worker
process is killed mid-task or the broker restarts mid-run (real brokers, real ``faces worker`` processes, the
test's database on each backend; the workers read the photos through ``path_map``)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.scale.conftest import PHOTOS, SHARED_RABBITMQ, SHARED_REDIS, assert_same_faces, faces_of


def _check_summary(summary: dict, inprocess: dict) -> None:
    expected = inprocess["summary"]
    assert summary["busy"] is False
    assert summary["images"] == len(PHOTOS)
    assert summary["errors"] == 0, summary["error_details"]
    for key in ("faces", "embeddings", "no_face"):
        assert summary[key] == expected[key], key


def test_two_workers_find_exactly_the_faces_of_the_in_process_scan(cluster, store, inprocess_faces):
    cluster.start(SHARED_REDIS, count=2)
    cluster.add_photos(store)
    summary = cluster.wait_scan(cluster.scan())
    _check_summary(summary, inprocess_faces)
    assert_same_faces(faces_of(cluster.env()["FACES_DATABASE_URL"]), inprocess_faces["faces"])
    assert all(w.succeeded() > 0 for w in cluster.workers), "both workers took tasks"
    # nothing left to do: a second scan finds no work and sends no task
    again = cluster.wait_scan(cluster.scan())
    assert again["images"] == 0 and again["run_id"] is None


@pytest.mark.one_backend  # the queue's behaviour; the backends are covered by the tests above and beside
def test_a_worker_killed_mid_task_loses_nothing_and_duplicates_nothing(cluster, store, inprocess_faces):
    cluster.start(SHARED_RABBITMQ, count=2)
    cluster.add_photos(store)
    scan = cluster.scan()
    victim = cluster.workers[0]
    # Kill the pool process once it has been inside a task for a moment (a task handed over but not yet
    # started is simply given to the next pool process, which tests nothing); try again if it was too early.
    # A replaced pool process loads its models first: wait until it has finished a task before trying again.
    busy_since = None
    finished_before = 0
    deadline = time.monotonic() + 120
    while "WorkerLostError" not in victim.text() and scan.poll() is None and time.monotonic() < deadline:
        if not victim.busy() or victim.succeeded() <= finished_before:
            busy_since = None
        elif busy_since is None:
            busy_since = time.monotonic()
        elif time.monotonic() - busy_since > 0.1:
            finished_before = victim.succeeded()
            for pid in victim.pool_pids():
                os.kill(pid, signal.SIGKILL)
            busy_since = None
            time.sleep(0.5)  # let the worker notice and log
        time.sleep(0.02)
    assert "WorkerLostError" in victim.text(), "the scan ended before a worker could be killed mid-task"
    summary = cluster.wait_scan(scan)
    _check_summary(summary, inprocess_faces)
    assert_same_faces(faces_of(cluster.env()["FACES_DATABASE_URL"]), inprocess_faces["faces"])


@pytest.mark.one_backend
def test_the_broker_restarting_mid_run_loses_nothing(cluster, store, inprocess_faces, redis_server):
    cluster.start(redis_server.url, count=2)
    cluster.add_photos(store)
    scan = cluster.scan()
    deadline = time.monotonic() + 120
    while cluster.finished_images() < 2 and scan.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scan.poll() is None, "the scan ended before the broker could be restarted"
    done_before = cluster.finished_images()
    redis_server.restart()  # no persistence: every queued task is gone
    summary = cluster.wait_scan(scan)
    assert done_before < len(PHOTOS)
    _check_summary(summary, inprocess_faces)
    assert_same_faces(faces_of(cluster.env()["FACES_DATABASE_URL"]), inprocess_faces["faces"])
