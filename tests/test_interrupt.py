"""A run stopped midway is recorded as interrupted, never left 'running' forever."""
import json
import os
import signal
import subprocess
import time

from conftest import BIN, ROOT, reprlab

from reprlab.runner import new_experiment_notebook
from reprlab.store import Store

SLOW = ("from reprlab.report import begin, log_metrics\nimport time\nrun = begin(globals())\n"
        "log_metrics(started=1)\ntime.sleep(secs)")


def _start_slow(lab_experiments, lab):
    new_experiment_notebook(lab_experiments / 'slow.ipynb', 'secs: int = 60  # how long to sleep', SLOW)
    p = subprocess.Popen([str(BIN / 'reprlab'), 'run', 'slow', '--no-progress'], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:                 # wait until the notebook is inside its sleep
        runs = list((lab / 'reports' / 'slow').glob('*/metrics.json'))
        if runs: return p, runs[0].parent
        time.sleep(0.3)
    p.kill(); raise AssertionError('the run never started')


def test_sigterm_marks_run_interrupted_and_keeps_report(lab_experiments, lab):
    p, rdir = _start_slow(lab_experiments, lab)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    row = Store().get(rdir.name)
    assert row['status'] == 'interrupted' and row['metrics'] == {'started': 1}
    assert (rdir / 'report.ipynb').exists() and (rdir / 'report.html').exists()
    assert json.loads((rdir / 'environment.json').read_text())['status'] == 'interrupted'


def test_killed_run_shows_as_interrupted(lab_experiments, lab):
    p, rdir = _start_slow(lab_experiments, lab)
    os.kill(p.pid, signal.SIGKILL)                # no chance to record anything
    p.communicate(timeout=30)
    r = reprlab('results', 'slow', '--format', 'json')
    rows = json.loads(r.stdout)
    assert [(x['id'], x['status']) for x in rows] == [(rdir.name, 'interrupted')]
