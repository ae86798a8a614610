"""Bench only: every collection of a running ``lrs project``, timed by generation.

Put this directory on PYTHONPATH of ``bench/projection.py --lag-only`` (the
service's processes inherit it) with ``RUNNER_GC_DIR`` set: in the process
whose arguments include ``project`` it times each collection
(``gc.callbacks``, the collecting thread's CPU) and every second writes the
totals so far, with a history of them and of the process's CPU, to
``$RUNNER_GC_DIR/<RUNNER_GC_LABEL>-<pid>.json``; ``bench/runner_gc.py``
takes the collections made while the run's load was applied."""

import sys

if "project" in sys.argv and __import__("os").environ.get("RUNNER_GC_DIR"):
    import gc
    import json
    import os
    import threading
    import time

    _stats = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    _began = [0.0]

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            _began[0] = time.thread_time()
        else:
            counted = _stats[info["generation"]]
            counted[0] += 1
            counted[1] += time.thread_time() - _began[0]

    gc.callbacks.append(_timed)
    _path = os.path.join(os.environ["RUNNER_GC_DIR"], f"{os.environ.get('RUNNER_GC_LABEL', 'run')}-{os.getpid()}.json")
    _history: list = []

    def _write() -> None:
        while True:
            time.sleep(1)
            _history.append([round(time.time(), 1), round(time.process_time(), 3), [list(v) for v in _stats.values()]])
            with open(_path + ".tmp", "w") as out:
                json.dump({"cpu_s": time.process_time(), "gens": _stats, "frozen": gc.get_freeze_count(),
                           "history": _history}, out)
            os.replace(_path + ".tmp", _path)

    threading.Thread(target=_write, daemon=True).start()
