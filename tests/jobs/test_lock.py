"""The per-library run lock: one holder at a time, progress for the others, dead holders taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from faces.jobs import lock
from faces.store.models import RunLock
from faces.store.users import get_or_create_user


@pytest.fixture
def owner_id(store) -> int:
    with store.session() as session:
        return get_or_create_user(session, "alice").id


def test_second_run_is_told_busy_with_progress(store, owner_id):
    held = lock.acquire(store, owner_id)
    held.set_progress(total=10, done=3)
    assert held.beat()
    with pytest.raises(lock.DetectionBusy) as info:
        lock.acquire(store, owner_id)
    assert info.value.progress.total == 10 and info.value.progress.done == 3
    assert "detection is still busy" in str(info.value)
    held.release()
    again = lock.acquire(store, owner_id)  # free after release
    again.release()
    assert not lock.lock_exists(store, owner_id)


def test_stale_heartbeat_is_taken_over_and_old_holder_learns_it(store, owner_id):
    old = lock.acquire(store, owner_id, holder="otherhost:123:abcd")
    with store.session() as session:
        session.execute(update(RunLock).values(heartbeat_at=datetime.now(timezone.utc) - timedelta(minutes=10)))
    new = lock.acquire(store, owner_id, stale_after=60)
    assert new.holder != old.holder
    assert lock.read_progress(store, owner_id).holder == new.holder
    assert old.beat() is False and old.lost  # its heartbeat no longer matches
    old.release()  # must not delete the new holder's row
    assert lock.read_progress(store, owner_id).holder == new.holder
    new.release()


def test_recent_heartbeat_of_another_host_is_respected(store, owner_id):
    lock.acquire(store, owner_id, holder="otherhost:123:abcd")
    with pytest.raises(lock.DetectionBusy):
        lock.acquire(store, owner_id, stale_after=60)


def test_dead_process_on_this_host_is_taken_over_at_once(store, owner_id):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    holder = f"{lock.make_holder().rsplit(':', 2)[0]}:{proc.pid}:dead"
    lock.acquire(store, owner_id, holder=holder)
    new = lock.acquire(store, owner_id, stale_after=3600)
    assert lock.read_progress(store, owner_id).holder == new.holder
    new.release()


def test_racing_takeovers_have_one_winner(store, owner_id):
    lock.acquire(store, owner_id, holder="otherhost:1:stale")
    with store.session() as session:
        session.execute(update(RunLock).values(heartbeat_at=datetime.now(timezone.utc) - timedelta(minutes=10)))
    winners, busy, barrier = [], [], threading.Barrier(6)

    def contend():
        barrier.wait()
        try:
            winners.append(lock.acquire(store, owner_id, stale_after=60))
        except lock.DetectionBusy:
            busy.append(1)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(busy) == 5
    assert lock.read_progress(store, owner_id).holder == winners[0].holder
