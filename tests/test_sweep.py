"""Sweeps through the command line: validation before anything starts, parallel local workers, resuming after a
kill, and a real Dask scheduler with two workers on 127.0.0.1."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, ROOT, reprlab

from reprlab.experiment import new_experiment_notebook
from reprlab.store import Store, import_runs

TOY_BODY = """import os, time
import torch
from reprlab.report import begin, log_metrics
run = begin(globals())
t0 = time.time()
time.sleep(pause)
assert x > 0, f'x must be positive, got {x}'
log_metrics(val_acc=1 / (1 + (x - 2) ** 2), t_start=t0, t_end=time.time(), threads=torch.get_num_threads(),
            omp=int(os.environ.get('OMP_NUM_THREADS', 0)))
"""


@pytest.fixture
def toy(lab_experiments):
    new_experiment_notebook(lab_experiments / 'toy.ipynb', "x: float = 2.0  # input\npause: float = 0.0  # seconds to sleep\nmode: str = 'a'  # a label",
                            TOY_BODY, summary='A toy that sleeps.')
    return lab_experiments


def _rows(sweep, experiment='toy'):
    return Store(os.environ['REPRLAB_STORE']).runs(experiment, sweep=sweep)


@pytest.mark.parametrize('args, message', [
    (['--grid', 'xx=1,2'], "unknown parameter(s) 'xx'"),
    (['--grid', 'x=1,banana'], "parameter 'x' expects float"),
    (['--grid', 'x='], 'empty grid'),
    (['--random', '2', '--dist', 'x=normal:0:1'], 'expected uniform'),
    (['--random', '2', '--dist', 'mode=uniform:0:1'], 'take choice'),
    (['--grid', 'x=1', '-p', 'x', '2'], 'more than once'),
    (['--workers', '2', '--dask', 'tcp://127.0.0.1:1'], 'not both'),
])
def test_bad_sweeps_are_refused_before_anything_starts(toy, lab, args, message):
    r = reprlab('sweep', 'toy', *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (lab / 'reports').exists() and not (lab / 'results.sqlite').exists()


def test_a_bad_sweep_file_is_refused(toy, lab, tmp_path):
    f = tmp_path / 'bad.yaml'
    f.write_text('experiment: toy\ngrid: {x: [1, 2]}\nworker: 2\n')
    r = reprlab('sweep', '--config', f)
    assert r.returncode == 2 and "unknown key(s) ['worker']" in r.stderr and 'valid keys' in r.stderr
    assert not (lab / 'reports').exists()


def test_local_sweep_runs_points_in_parallel_and_resumes(toy, lab, tmp_path):
    cfg = tmp_path / 'sweep.yaml'
    cfg.write_text('experiment: toy\nname: par\ngrid:\n  x: [1.0, 2.0, 3.0, -1.0]\nparams: {pause: 3}\nworkers: 2\n')
    t = time.time()
    r = reprlab('sweep', '--config', cfg, '--no-progress', timeout=300)
    assert r.returncode == 1, r.stderr + r.stdout                  # the x = -1 point fails; the others go on
    rows = _rows('par')
    assert sorted(rows.status) == ['failed', 'ok', 'ok', 'ok'] and rows.x.nunique() == 4
    ok = rows[rows.status == 'ok'].sort_values('t_start')
    spans = list(zip(ok.t_start, ok.t_end))
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans   # two runs overlapped in time: parallel workers
    assert (ok.threads == 1).all() and (ok.omp == 1).all()           # each run limited to one thread
    for _, row in rows.iterrows():
        assert Path(row.report).exists() and (Path(row.run_dir) / 'params.json').exists()
    failed = rows[rows.status == 'failed'].iloc[0]
    assert 'x must be positive, got -1.0' in failed.error
    summary = lab / 'reports' / 'toy' / 'sweeps' / 'par'
    assert (summary / 'report.html').exists() and (summary / 'figures' / 'by_x.png').exists()
    assert 'is **x = 2.0**' in (summary / 'dialog.md').read_text()
    env = json.loads((summary / 'environment.json').read_text())   # where the summary ran, as a run records it
    assert env['sweep'] == 'par' and env['commit'] and env['versions']['torch'] and env['device'] == 'cpu', env
    table = reprlab('results', 'toy', '--sweep', 'par', '--sort', 'val_acc', '--format', 'json')
    best = json.loads(table.stdout)
    assert best[0]['val_acc'] == 1.0 and best[0]['sweep'] == 'par'
    again = reprlab('sweep', '--config', cfg, '--no-progress', '--no-summary', timeout=120)
    assert again.returncode == 0 and '4 already completed, 0 to run' in again.stdout
    assert len(_rows('par')) == 4


def test_killed_sweep_resumes_without_losing_or_duplicating_rows(toy, lab):
    args = [str(BIN / 'reprlab'), 'sweep', 'toy', '--grid', 'x=0.5,1,1.5,2,2.5,3', '-p', 'pause', '4', '--workers', '2',
            '--name', 'kill', '--no-progress', '--no-summary']
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if (lab / 'results.sqlite').exists() and (_rows('kill').status == 'ok').sum() >= 2: break
    else:
        proc.kill(); pytest.fail('no point completed in time')
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    before = _rows('kill')
    assert 'running' not in set(before.status), before.status
    done = set(before[before.status == 'ok'].id)
    assert 2 <= len(done) < 6 and (before.status == 'interrupted').sum() >= 1
    r = reprlab('sweep', *args[2:], timeout=300)
    assert r.returncode == 0, r.stderr
    assert f'{len(done)} already completed, {6 - len(done)} to run' in r.stdout
    after = _rows('kill')
    ok = after[after.status == 'ok']
    assert len(ok) == 6 and ok['x'].nunique() == 6                   # every point once
    assert done <= set(ok.id)                                         # completed rows kept
    assert len(after) == len(before) + 6 - len(done)                  # only the missing points ran


def test_a_sweep_resumes_from_imported_run_folders(toy, lab, tmp_path, monkeypatch):
    "Run folders copied to another machine and added with import_runs count as completed points; a row of unknown notebook does not."
    r = reprlab('sweep', 'toy', '--grid', 'x=1,2', '--name', 'moved', '--no-progress', '--no-summary', timeout=300)
    assert r.returncode == 0, r.stderr
    other = tmp_path / 'other.sqlite'
    added = import_runs(lab / 'reports', Store(other))
    assert len(added) == 2
    with sqlite3.connect(other) as con:   # import_runs keeps each run's digests, not the notebook_hash column
        assert {row[0] for row in con.execute('SELECT notebook_hash FROM runs')} == {None}
    monkeypatch.setenv('REPRLAB_STORE', str(other))
    again = reprlab('sweep', 'toy', '--grid', 'x=1,2,3', '--name', 'moved', '--no-progress', '--no-summary', timeout=300)
    assert again.returncode == 0, again.stderr
    assert '3 points, 2 already completed, 1 to run' in again.stdout, again.stdout
    rows = _rows('moved')
    assert sorted(rows.x) == [1.0, 2.0, 3.0] and set(added) < set(rows.id)
    with sqlite3.connect(other) as con:   # a row from an older store: no notebook digest at all
        con.execute("UPDATE runs SET digests = NULL, notebook_hash = NULL WHERE id = ?", (added[0],))
    third = reprlab('sweep', 'toy', '--grid', 'x=1,2,3', '--name', 'moved', '--no-progress', '--no-summary', timeout=300)
    assert third.returncode == 0 and '2 already completed, 1 to run' in third.stdout, third.stdout + third.stderr
    assert len(_rows('moved')) == 4


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture
def dask_cluster(lab):
    port = _free_port()
    address = f'tcp://127.0.0.1:{port}'
    dask = str(BIN / 'dask')
    procs = [subprocess.Popen([dask, 'scheduler', '--host', '127.0.0.1', '--port', str(port), '--no-dashboard'],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close(); break
            except OSError: time.sleep(0.3)
        else: pytest.fail('the dask scheduler did not start')
        for i in range(2):
            procs.append(subprocess.Popen([dask, 'worker', address, '--nthreads', '1', '--no-dashboard', '--name', f'w{i}',
                                           '--death-timeout', '60'], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for p in reversed(procs): p.terminate()
        for p in procs:
            try: p.wait(timeout=30)
            except subprocess.TimeoutExpired: p.kill()


def test_sweep_on_an_existing_dask_scheduler(lab_experiments, lab, dask_cluster):
    r = reprlab('sweep', 'quickstart', '--grid', 'ks=3,7', '--grid', 'metric=cosine,euclidean', '-p', 'n_train', '400',
                '--dask', dask_cluster, '--name', 'onDask', '--no-progress', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout
    rows = _rows('onDask', 'quickstart')
    assert len(rows) == 4 and (rows.status == 'ok').all()
    assert sorted(zip(rows.ks, rows['param.metric'] if 'param.metric' in rows else rows.metric)) == \
        [([3], 'cosine'), ([3], 'euclidean'), ([7], 'cosine'), ([7], 'euclidean')]   # ks is a list parameter
    for _, row in rows.iterrows():
        assert Path(row.report).exists() and 0.9 < row.knn_test_acc <= 1
        env = json.loads((Path(row.run_dir) / 'environment.json').read_text())
        assert env['status'] == 'ok' and env['explicit'] == ['ks', 'metric', 'n_train'], env   # the run lifecycle of `reprlab run`
    summary = lab / 'reports' / 'quickstart' / 'sweeps' / 'onDask'
    assert (summary / 'report.html').exists() and (summary / 'figures' / 'by_ks.png').exists()   # a list parameter, plotted by its text
    assert json.loads((summary / 'environment.json').read_text())['status'] == 'ok' and 'ks = ' in (summary / 'dialog.md').read_text()


def test_a_sweep_whose_points_all_fail_says_so_with_the_first_error(lab_experiments, lab):
    "Each point logs val_acc, then fails: the summary says every point failed and shows the first error (not 'val_acc not recorded')."
    new_experiment_notebook(lab_experiments / 'late.ipynb', "x: float = 1.0  # input",
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\nlog_metrics(val_acc=0.5)\n"
                            "raise ValueError(f'x = {x} fails after logging')\n", summary='Fails late.')
    r = reprlab('sweep', 'late', '--grid', 'x=1,2', '--metric', 'val_acc', '--workers', '1', '--name', 'allfail', '--no-progress', timeout=300)
    assert r.returncode == 1 and 'was not recorded' not in r.stderr + r.stdout, r.stderr + r.stdout
    rows = _rows('allfail', 'late').sort_values('started')
    assert list(rows.status) == ['failed', 'failed'] and (rows.val_acc == 0.5).all()
    assert (f"sweep allfail: every point failed (2 runs); the first error, run {rows.id.iloc[0]}: ValueError: x = 1.0 fails after logging"
            in r.stdout), r.stdout
    summary = lab / 'reports' / 'late' / 'sweeps' / 'allfail'
    dialog = (summary / 'dialog.md').read_text()
    assert f"**all 2 points failed** (2 failed, 0 interrupted), so nothing is ranked by val_acc. The first error, run `{rows.id.iloc[0]}`: " \
           f"ValueError: x = 1.0 fails after logging" in dialog, dialog
    assert 'fails after logging' in (summary / 'report.html').read_text()
