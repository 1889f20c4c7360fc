"""Several processes opening (and creating) one store at the same moment all succeed."""

from __future__ import annotations

import subprocess
import sys


def test_processes_creating_one_store_at_once(tmp_path):
    db = tmp_path / "s.db"
    code = (
        "import sys, time; from promptgauge.store import Store\n"
        "t = float(sys.argv[2])\n"
        "while time.time() < t: pass\n"
        "s = Store(sys.argv[1]); s.create_run('r' + sys.argv[3], 'suite', None, {}, {}); s.close()\n"
    )
    import time

    start = time.time() + 1.5  # all processes spin until the same instant, then open the new file
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(start), str(i)], stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    import sqlite3

    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 6
