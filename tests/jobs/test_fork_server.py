"""The detection workers' fork server makes the finders' models before the workers fork from it
(faces.jobs.prebuild). A worker forked after that must find exactly what a worker that made its own finds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytest.importorskip("onnxruntime")
PHOTOS = ["wikimedia_commons_people/bildes/Rumba_Kings_Band_Group_Photo_2023.jpg",  # 13 faces
          "dlib_faces_gt/dev/2008_001322.jpg"]

# Run in a new process: its fork server is started here with the detection workers' preload, as by `faces scan`
# (a test process's fork server may have been started by another test, with another preload).
SCRIPT = textwrap.dedent("""
    import json, multiprocessing, sys
    from faces.config import load_settings
    from faces.jobs import worker_preload
    from faces.jobs.executor import WorkerPool

    settings = load_settings(sys.argv[1], environ={})
    finder = sys.argv[2]
    out = {}
    for name, options in (("forked", {"preload": worker_preload([finder])}),
                          ("own", {"context": multiprocessing.get_context("spawn")})):
        with WorkerPool(1, "tests.jobs.workfuncs:detect_faces", "tests.jobs.workfuncs:init_finder",
                        (settings, finder), **options) as pool:
            out[name] = [o.result for o in sorted(pool.run(enumerate(sys.argv[3:])), key=lambda o: o.key)]
    print(json.dumps(out))
""")


@pytest.mark.parametrize("finder", ["opencv", "dlib"])
def test_a_worker_forked_after_the_models_were_made_finds_the_same_faces(tmp_path, data_root, finder):
    pytest.importorskip(finder if finder == "dlib" else "cv2")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), finder,
                           *(str(data_root / p) for p in PHOTOS)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [inherited for inherited, _ in out["forked"]] == [True, True]
    assert [inherited for inherited, _ in out["own"]] == [False, False]
    assert [len(faces) for _, faces in out["own"]] == [13, 3]
    assert [faces for _, faces in out["forked"]] == [faces for _, faces in out["own"]]
