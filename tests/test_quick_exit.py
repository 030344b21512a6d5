"""faces.quick_exit: a process armed with it ends right after its exit handlers, with its own exit code, its
output complete and ``before`` done; one ended by an uncaught exception ends as Python ends it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent("""
        import atexit, sys
        from faces.quick_exit import arm
        finish = arm(before=lambda: print("closed", flush=False))
        atexit.register(lambda: print("later handler ran"))
        print("x" * 100000, end="|")  # more than a pipe's buffer, held in Python's buffer too
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_finished_program_keeps_its_exit_code_and_all_its_output():
    proc = _run("""
        try:
            sys.exit(3)
        except SystemExit as done:
            finish(done.code)
            raise
    """)
    assert proc.returncode == 3
    assert proc.stdout == "x" * 100000 + "|later handler ran\nclosed\n"


def test_exit_codes_are_read_as_python_reads_them():
    ended = _run("finish(None)")  # the quick end ran (before() printed) and None became 0
    assert ended.returncode == 0 and ended.stdout.endswith("|later handler ran\nclosed\n")
    proc = _run("""
        try:
            sys.exit("no such file")
        except SystemExit as done:
            finish(done.code)
            raise
    """)
    assert proc.returncode == 1 and "no such file" in proc.stderr


def test_a_failing_before_is_reported_and_the_code_kept():
    code = textwrap.dedent("""
        from faces.quick_exit import arm
        def before():
            raise RuntimeError("disk gone")
        arm(before=before)(5)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5
    assert "while closing: RuntimeError: disk gone" in proc.stderr


def test_an_uncaught_exception_ends_the_usual_way():
    proc = _run("raise ValueError('boom')")
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    assert "closed" not in proc.stdout and proc.stdout.endswith("|later handler ran\n")
