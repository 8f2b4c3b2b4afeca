"""Faults and bad input, tried as a user and an attacker would: each probe asserts the exit status, the message, what is
on disk and what is in the store. A report is right, or it says that it is not."""
import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import BIN, ROOT, files_under, reprlab

from reprlab.experiment import new_experiment_notebook
from reprlab.runner import run_experiment
from reprlab.store import Store

BEGIN = "from reprlab.report import begin, check_finite, log_metrics, say, hope, show_hopes\nrun = begin(globals())\n"


def _toy(folder, name, params, body, **kw):
    return new_experiment_notebook(folder / f'{name}.ipynb', params, BEGIN + body, summary=f'{name}.', **kw)


def _rows():
    return Store(os.environ['REPRLAB_STORE']).runs(expand=False) if Path(os.environ['REPRLAB_STORE']).exists() else []


# --- divergence ------------------------------------------------------------------------------------------------------

DIVERGES = """import numpy as np
w = np.ones(3)
for epoch in range(5):
    w = w * lr                                   # a 'training step' that blows up when lr is large
    log_metrics(last_epoch=epoch)
    check_finite(epoch, 'lr', weights=w)
say(f"the weights reached {w.max():.3g}")
hope('finite', True)
show_hopes()
"""


def test_a_diverging_run_is_failed_with_a_diverged_error_and_no_dialog(lab_experiments, lab):
    _toy(lab_experiments, 'blowup', 'lr: float = 2.0  # growth per step [> 0]', DIVERGES)
    r = reprlab('run', 'blowup', '-p', 'lr', '1e6', '--json')
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out['status'] == 'failed'
    assert out['error'] == 'diverged: weights is 1e+12 in magnitude (above 1e+10) at epoch 1; lower lr', out['error']
    d = Path(out['run_dir'])
    assert out['metrics'] == {'last_epoch': 1}                      # kept up to the failure
    assert not (d / 'dialog.md').exists() and not (d / 'hopes.json').exists()   # no dialog over garbage
    html = (d / 'report.html').read_text()
    assert 'diverged: weights is 1e+12' in html and 'the weights reached 1' not in html   # the code shows, its output never ran
    row = Store().get(out['run_id'])
    assert row['status'] == 'failed' and row['error'].startswith('diverged: ')
    ok = json.loads(reprlab('run', 'blowup', '-p', 'lr', '1.5', '--json').stdout)   # a sane lr ends ok, with its dialog
    assert ok['status'] == 'ok' and (Path(ok['run_dir']) / 'dialog.md').exists()


def test_a_non_finite_metric_is_refused(lab_experiments, lab):
    _toy(lab_experiments, 'nanmetric', 'x: float = 1.0  # a number [> 0]', "log_metrics(good=x)\nlog_metrics(acc=float('nan'))\nsay('never')")
    out = json.loads(reprlab('run', 'nanmetric', '--json').stdout)
    assert out['status'] == 'failed' and out['error'].startswith("diverged: metric 'acc' is nan")
    assert out['metrics'] == {'good': 1.0} and not (Path(out['run_dir']) / 'dialog.md').exists()


# --- out-of-range values: refused before any kernel starts ----------------------------------------------------------

@pytest.mark.parametrize('experiment, name, value, message', [
    ('quickstart', 'n_train', '-5', "parameter 'n_train' = -5: expected >= 0 (constraint [min 0])"),
    ('quickstart', 'C', '-1', "parameter 'C' = -1.0: expected > 0"),
    ('quickstart', 'C', 'nan', "parameter 'C' = nan: expected a finite number"),
    ('quickstart', 'C', 'inf', "parameter 'C' = inf: expected a finite number"),
    ('quickstart', 'ks', '0,3', "parameter 'ks' = [0, 3]: item 0: expected >= 1"),
    ('quickstart', 'metric', 'manhattan', "parameter 'metric' = 'manhattan': expected one of cosine, euclidean"),
    ('centroid_clustering', 'epochs', '0', "parameter 'epochs' = 0: expected >= 1"),
    ('centroid_clustering', 'batch_size', '0', "parameter 'batch_size' = 0: expected >= 1"),
    ('kh_readout', 'k', '0', "parameter 'k' = 0: expected >= 1"),
    ('kh_readout', 'k', '99999999999999999999999', "out of range for a 64-bit integer"),
    ('quickstart', 'preset', 'study', "unknown parameter(s) 'preset'"),
    ('centroid_clustering', 'preset', 'paper', "parameter 'preset' = 'paper': expected one of lab, study"),
])
def test_out_of_range_values_are_refused_before_anything_runs(lab, experiment, name, value, message):
    r = reprlab('run', experiment, '-p', name, value)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert not (lab / 'reports').exists() and not (lab / 'results.sqlite').exists()   # no kernel, no folder, no row


def test_every_parameter_of_every_experiment_has_a_constraint():
    from reprlab.experiment import list_experiments, notebook_metrics, notebook_params, notebook_presets
    missing = []
    for name, path in list_experiments().items():
        params = notebook_params(path)            # also checks every default against its constraint
        notebook_presets(path, params)            # and every preset value
        assert notebook_metrics(path), f'{name} declares no METRICS'
        missing += [f'{name}.{p.name}' for p in params.values() if p.type in ('int', 'float') and not p.constraint]
    assert not missing, f'parameters without a constraint: {missing}'


def test_papermill_reads_every_parameter_line():
    "Constraints avoid a second '=' on the line, so papermill's own inspection still sees each parameter."
    import papermill as pm
    from reprlab.experiment import list_experiments, notebook_params
    for name, path in list_experiments().items():
        seen = set(pm.inspect_notebook(str(path)))
        assert seen == set(notebook_params(path)), (name, set(notebook_params(path)) - seen)


# --- experiment names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['../experiments/quickstart', '/etc/passwd', 'quick/start', '..', '_template', '.hidden'])
def test_experiment_names_are_plain_names(lab, name):
    r = reprlab('run', name)
    assert r.returncode == 2, r.stderr
    assert f"experiment {name!r}: expected the name of a notebook" in r.stderr or f"unknown experiment {name!r}" in r.stderr
    assert not (lab / 'reports').exists() and not (ROOT / 'nbs' / 'reports').exists()
    assert not (ROOT / 'reports' / 'experiments').exists()


def test_a_misspelt_experiment_gets_a_suggestion(lab):
    r = reprlab('run', 'quickstrat')
    assert r.returncode == 2 and "unknown experiment 'quickstrat'; did you mean 'quickstart'?" in r.stderr


# --- timeouts -------------------------------------------------------------------------------------------------------

def test_a_hung_cell_times_out_and_is_named(lab_experiments, lab, monkeypatch):
    _toy(lab_experiments, 'hangs', 'secs: int = 600  # how long to hang [min 0]', "log_metrics(before=1)\nimport time\ntime.sleep(secs)")
    monkeypatch.setenv('REPRLAB_TIMEOUT', '4')               # the settings key's default, from the environment
    t = time.time()
    r = reprlab('run', 'hangs', '--json', timeout=120)
    assert r.returncode == 1 and time.time() - t < 100
    out = json.loads(r.stdout)
    assert out['status'] == 'failed'
    assert re.fullmatch(r"timeout: cell 3 \(`from reprlab.report import begin.*`\) ran longer than 4 s", out['error']), out['error']
    r = reprlab('run', 'hangs', '-p', 'secs', '0', '--timeout', '0', '--json')   # --timeout 0: no limit
    assert json.loads(r.stdout)['status'] == 'ok'


# --- recording survives faults -----------------------------------------------------------------------------------------

def test_a_full_disk_during_the_run_is_failed_with_no_space_left(lab_experiments, lab, monkeypatch, tmpfs):
    reports = tmpfs.path / 'reports'
    monkeypatch.setenv('REPRLAB_REPORTS', str(reports))
    _toy(lab_experiments, 'floods', 'mb: int = 4  # megabytes printed [min 1]', "log_metrics(before=1)\nprint('x' * (mb << 20))")
    r = reprlab('run', 'floods', '--json')
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out['status'] == 'failed' and out['error'].startswith('no space left on device'), out['error']
    row = Store().get(out['run_id'])
    assert row['status'] == 'failed' and 'no space left on device' in row['error']        # the store lives elsewhere: recorded
    assert not [f for f in files_under(reports) if f.endswith('.tmp')]                    # nothing half-written left behind


def test_a_finished_run_keeps_its_outcome_when_the_report_cannot_be_written(lab_experiments, lab, monkeypatch):
    "The notebook finished: the row says ok, with a note, even though the optional files failed with ENOSPC."
    import reprlab.runner as runner
    _toy(lab_experiments, 'fine', 'x: float = 1.0  # a number [> 0]', "log_metrics(x=x)")
    real = runner.write_json
    def full(path, obj):
        if Path(path).name == 'environment.json' and 'finished' in obj: raise OSError(errno.ENOSPC, 'No space left on device')
        return real(path, obj)
    def no_html(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(runner, 'write_json', full)
    monkeypatch.setattr(runner, 'render_html', no_html)
    res = run_experiment('fine', progress=False)
    row = Store().get(res.run_id)
    assert res.status == 'ok' and row['status'] == 'ok' and row['metrics'] == {'x': 1.0}
    assert 'report not written: no space left on device' in row['error'] and 'environment.json not updated' in row['error']
    assert not [f for f in files_under(res.run_dir) if f.endswith('.tmp')] and not (res.run_dir / 'report.html').exists()


def test_a_corrupt_store_is_one_line_naming_it_and_leaves_no_folder(lab, monkeypatch):
    store = lab / 'garbage.sqlite'
    store.write_bytes(b'this is not a database ' * 200)
    monkeypatch.setenv('REPRLAB_STORE', str(store))
    for args in (['run', 'quickstart'], ['results']):
        r = reprlab(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"reprlab {args[0]}: {store}: not a usable results store (file is not a database)"), r.stderr
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (lab / 'reports').exists()


def test_a_store_with_smashed_pages_leaves_no_orphan_folder(lab, monkeypatch):
    path = lab / 'smashed.sqlite'
    st = Store(path)
    for i in range(300):
        st.add(id=f'r{i}', experiment='e', params={'i': i, 'pad': 'x' * 200}, status='ok', started='2026-01-01 00:00:00')
    with sqlite3.connect(path) as con: con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096): data[page * 4096: page * 4096 + 100] = b'\xff' * 100   # every page but the header's
    path.write_bytes(bytes(data))
    monkeypatch.setenv('REPRLAB_STORE', str(path))
    r = reprlab('run', 'quickstart')
    assert r.returncode == 2 and f"{path}: not a usable results store" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (lab / 'reports').exists()


def test_a_read_only_store_is_readable_and_refuses_runs(lab, monkeypatch, tmpfs):
    st = Store(tmpfs.path / 'results.sqlite')
    st.add(id='old-run', experiment='quickstart', params={'n_train': 1}, status='ok', started='2026-01-01 00:00:00',
           metrics={'knn_test_acc': 0.5})
    st.add(id='ghost', experiment='quickstart', params={'n_train': 2}, status='running', started='2026-01-01 00:00:01', pid=2**22 + 7)
    tmpfs.remount('ro')
    monkeypatch.setenv('REPRLAB_STORE', str(st.path))
    r = reprlab('results', '--format', 'json')
    assert r.returncode == 0, r.stderr
    assert {(x['id'], x['status']) for x in json.loads(r.stdout)} == {('old-run', 'ok'), ('ghost', 'interrupted')}
    r = reprlab('run', 'quickstart')
    assert r.returncode == 2 and f"{st.path}: the results store is read-only" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (lab / 'reports').exists()


def test_a_read_only_reports_folder_is_refused_with_no_row(lab, monkeypatch, tmpfs):
    tmpfs.remount('ro')
    monkeypatch.setenv('REPRLAB_REPORTS', str(tmpfs.path / 'reports'))
    r = reprlab('run', 'quickstart')
    assert r.returncode == 2, r.stderr
    assert f"the reports folder {tmpfs.path / 'reports'} cannot hold a new run (Read-only file system)" in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    assert len(_rows()) == 0                                    # the row added first was taken back


def test_an_unwritable_store_folder_is_named(lab, monkeypatch, tmpfs):
    tmpfs.remount('ro')
    monkeypatch.setenv('REPRLAB_STORE', str(tmpfs.path / 'sub' / 'results.sqlite'))
    r = reprlab('run', 'quickstart')
    assert r.returncode == 2, r.stderr
    assert f"{tmpfs.path / 'sub' / 'results.sqlite'}: cannot create the folder of the results store (Read-only file system)" in r.stderr
    assert not (lab / 'reports').exists()


# --- signals, kernels, output -----------------------------------------------------------------------------------------

def _start(lab_experiments, lab, name, body, params='secs: int = 120  # how long to sleep [min 0]'):
    _toy(lab_experiments, name, params, body)
    p = subprocess.Popen([str(BIN / 'reprlab'), 'run', name, '--no-progress'], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:                            # wait until the notebook is inside its sleep
        runs = list((lab / 'reports' / name).glob('*/metrics.json'))
        if runs: return p, runs[0].parent
        time.sleep(0.3)
    p.kill(); raise AssertionError('the run never started')


SLEEPS = "log_metrics(started=1)\nimport time\ntime.sleep(secs)"


def _ipc_files(pid):
    return list(Path(tempfile.gettempdir()).glob(f'reprlab-{pid}-*-ipc-*'))


def test_sigterm_is_recorded_as_interrupted_sigterm_without_tracebacks(lab_experiments, lab):
    p, rdir = _start(lab_experiments, lab, 'sleeper', SLEEPS)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert err.strip() == 'reprlab run: interrupted (SIGTERM)', err                 # no ZMQ or kernel tracebacks
    row = Store().get(rdir.name)
    assert row['status'] == 'interrupted' and row['error'] == 'interrupted: SIGTERM' and row['metrics'] == {'started': 1}
    assert (rdir / 'report.html').exists() and not _ipc_files(p.pid)                  # kernel sockets removed on exit


def test_a_killed_launchers_kernel_files_are_swept_by_the_next_run(lab_experiments, lab):
    p, rdir = _start(lab_experiments, lab, 'sleeper', SLEEPS)
    assert _ipc_files(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert _ipc_files(p.pid)                                                          # left behind by the kill
    r = reprlab('run', 'sleeper', '-p', 'secs', '0', '--json')
    assert json.loads(r.stdout)['status'] == 'ok'
    assert not _ipc_files(p.pid)                                                      # swept at the next start
    assert Store().get(rdir.name)['status'] == 'interrupted'


def test_a_cell_printing_50_mb_is_capped(lab_experiments, lab):
    _toy(lab_experiments, 'chatty', 'mb: int = 50  # megabytes printed [min 1]',
         "import sys\nfor i in range(3): print(f'\\rstep {i} of 3', end='', file=sys.stderr)\nprint('\\rdone', file=sys.stderr)\nprint('y' * (mb << 20))")
    out = json.loads(reprlab('run', 'chatty', '--json', timeout=300).stdout)
    assert out['status'] == 'ok', out['error']
    d = Path(out['run_dir'])
    assert (d / 'report.html').stat().st_size < 2_000_000 and (d / 'report.ipynb').stat().st_size < 2_000_000
    html = (d / 'report.html').read_text()
    assert re.search(r'\[reprlab: 5[0-9,]+ characters of this output cut; a cell keeps at most 200,000\]', html)
    assert '>done' in html and 'step 1 of 3' not in html                                      # a redrawn line keeps its final state


# --- a full disk under the store and the reports -------------------------------------------------------------------------

def _fill(folder, leave):
    "Fill the filesystem of `folder` until `leave` bytes are free (a file of zeros)."
    st = os.statvfs(folder)
    size = max(st.f_bavail * st.f_frsize - leave, 0)
    with open(folder / 'filler', 'wb') as f:
        try: f.write(b'\0' * size)
        except OSError as e: assert e.errno == errno.ENOSPC, e   # a little more than the free bytes counted: the disk is full
    return folder / 'filler'


def test_a_full_disk_under_store_and_reports_is_named_and_recorded_and_leaves_a_whole_notebook(lab_experiments, lab, monkeypatch, tmpfs):
    "About 300 KB free for the store and the reports: a cell printing 600 KB cannot be saved; the run is failed, saying so."
    monkeypatch.setenv('REPRLAB_REPORTS', str(tmpfs.path / 'reports'))
    monkeypatch.setenv('REPRLAB_STORE', str(tmpfs.path / 'results.sqlite'))
    _toy(lab_experiments, 'floods', 'kb: int = 600  # kilobytes printed [min 1]', "log_metrics(before=1)\nprint('x' * (kb << 10))")
    Store()
    filler = _fill(tmpfs.path, 300_000)
    r = reprlab('run', 'floods', '--json')
    assert 'not a usable results store' not in r.stderr and 'move the file aside' not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out['status'] == 'failed' and out['error'].startswith('no space left on device: '), out['error']
    assert 'report.ipynb: cannot save the notebook (No space left on device)' in out['error'], out['error']
    d = Path(out['run_dir'])
    import nbformat
    nb = nbformat.read(d / 'report.ipynb', as_version=4)                 # the last whole notebook, valid JSON
    assert any('before=1' in c.source for c in nb.cells)
    assert not [f for f in files_under(tmpfs.path) if f.endswith('.tmp')]
    filler.unlink()                                                      # space returns: the row holds the true outcome
    row = Store().get(out['run_id'])
    assert row['status'] == 'failed' and row['error'].startswith('no space left on device: ') and row['metrics'] == {'before': 1}


def test_a_store_on_a_full_disk_is_named_as_a_full_disk_not_as_a_damaged_store(lab, monkeypatch, tmpfs):
    monkeypatch.setenv('REPRLAB_STORE', str(tmpfs.path / 'results.sqlite'))
    Store().add(id='old-run', experiment='quickstart', params={'n_train': 1}, status='ok', started='2026-01-01 00:00:00')
    filler = _fill(tmpfs.path, 0)
    r = reprlab('results', '--format', 'json')                          # reading needs no room
    assert r.returncode == 0 and [x['id'] for x in json.loads(r.stdout)] == ['old-run'], r.stderr
    r = reprlab('run', 'quickstart')
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"reprlab run: {tmpfs.path / 'results.sqlite'}: no space left on device: the disk holding the results "
                               f"store is full ("), r.stderr
    assert 'free space on it, or set REPRLAB_STORE' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert 'not a usable' not in r.stderr and 'move the file aside' not in r.stderr and 'Traceback' not in r.stderr
    assert not (lab / 'reports').exists()
    filler.unlink()
    r = reprlab('results', '--format', 'json')
    assert r.returncode == 0 and [x['id'] for x in json.loads(r.stdout)] == ['old-run'], r.stderr


def test_a_launcher_that_cannot_write_the_outcome_retries_and_else_the_store_takes_it_from_the_run_folder(lab_experiments, lab, monkeypatch):
    "The store's disk is full when the notebook ends: the launcher tries again; if space never returns in time, the next read records it."
    import reprlab.runner as runner
    from reprlab.store import StoreFullError
    _toy(lab_experiments, 'fine', 'x: float = 1.0  # a number [> 0]', "log_metrics(x=x)")
    monkeypatch.setattr(runner, '_RETRIES', (0, 0, 0))
    real, fails = Store.update, {'n': 0}
    def update(self, run_id, **fields):
        if 'status' in fields or 'report' in fields:
            if fails['n'] > 0:
                fails['n'] -= 1
                raise StoreFullError(f"{self.path}: no space left on device: the disk holding the results store is full")
        return real(self, run_id, **fields)
    monkeypatch.setattr(Store, 'update', update)
    fails['n'] = 3                                                       # space returns on the launcher's last tries
    res = run_experiment('fine', progress=False)
    row = Store().get(res.run_id)
    assert res.status == 'ok' and row['status'] == 'ok' and row['metrics'] == {'x': 1.0}, row
    assert row['error'] == 'report not written: no space left on device (report.html removed to make room for the results store)'
    assert row['report'] is None and not (res.run_dir / 'report.html').exists() and (res.run_dir / 'report.ipynb').exists()
    fails['n'] = 100                                                     # space never returns while the launcher waits
    with pytest.raises(StoreFullError) as e:
        run_experiment('fine', {'x': 2.0}, progress=False)
    assert 'environment.json holds its outcome, which the store takes when it is next read with space free' in str(e.value)
    assert re.search(r'Run \S+ ended ok', str(e.value)), str(e.value)
    monkeypatch.setattr(Store, 'update', real)
    rows = Store().runs('fine')                                          # the next read, space back
    assert rows.status.tolist() == ['ok', 'ok'] and rows.x.tolist() == [1.0, 2.0]
