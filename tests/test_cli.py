"""The reprlab command end to end: list, run (ok, failed, rejected), results, plain papermill, start-up time."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, ROOT, reprlab

from reprlab.experiment import new_experiment_notebook
from reprlab.store import Store

TINY = ['-p', 'n_train', '300', '-p', 'ks', '1,3,5']


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    "One lab for the module, with one quickstart run made up front (several tests read it)."
    d = tmp_path_factory.mktemp('cli')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('REPRLAB_REPORTS', str(d / 'reports')); mp.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
        mp.setenv('REPRLAB_DEVICE', 'cpu')
        r = reprlab('run', 'quickstart', *TINY, '-p', 'metric', 'euclidean', '--json')
        assert r.returncode == 0, r.stderr
        yield d, json.loads(r.stdout), r


def test_list_shows_parameters_with_constraints_presets_and_metrics(lab):
    r = reprlab('list')
    assert r.returncode == 0, r.stderr
    assert re.search(r'^quickstart — kNN, linear and nearest-centroid probes', r.stdout, re.M)
    assert "metric: str = 'cosine'    # distance of kNN and nearest centroid {cosine, euclidean}" in r.stdout
    assert "C: float = 1.0    # inverse regularisation of the linear probes [> 0]" in r.stdout
    assert 'metrics: knn_test_acc (primary, higher is better)' in r.stdout
    assert re.search(r'^  presets: lab \(the defaults above\), study \(\d+ values\)', r.stdout, re.M)   # a seed-system experiment
    assert '_template' not in r.stdout and '_sweep_summary' not in r.stdout


def test_run_quickstart_writes_report_files_and_row(shared):
    d, out, r = shared
    assert out['status'] == 'ok' and out['experiment'] == 'quickstart' and out['error'] is None
    rdir = d / 'reports' / 'quickstart' / out['run_id']
    assert out['run_dir'] == str(rdir) and out['report'] == str(rdir / 'report.html')
    for f in ('report.ipynb', 'report.html', 'params.json', 'metrics.json', 'environment.json', 'hopes.json', 'dialog.md', 'kernel.log'):
        assert (rdir / f).is_file(), f
    figs = sorted(p.name for p in (rdir / 'figures').glob('*.png'))
    assert figs == ['confusion.png', 'knn_scan.png', 'mistakes.png', 'probes.png', 'samples.png']
    params = json.loads((rdir / 'params.json').read_text())
    assert params == {'dataset': 'digits', 'n_train': 300, 'metric': 'euclidean', 'ks': [1, 3, 5], 'C': 1.0, 'seed': 0}
    metrics = json.loads((rdir / 'metrics.json').read_text())
    assert metrics == out['metrics'] and metrics['n_train'] == 300 and 0.5 < metrics['knn_test_acc'] <= 1
    env = json.loads((rdir / 'environment.json').read_text())
    assert env['status'] == 'ok' and env['seed'] == 0 and env['device'] == 'cpu' and env['duration'] > 0
    assert re.fullmatch(r'[0-9a-f]{40}', env['commit']) and isinstance(env['dirty'], bool)
    assert env['versions']['torch'] and env['versions']['reprlab'] and env['explicit'] == ['ks', 'metric', 'n_train']
    digests = env['digests']                                 # what makes a later change of code or data visible
    assert re.fullmatch(r'[0-9a-f]{64}', digests['notebook'])
    assert {'reprlab.data', 'reprlab.probes', 'reprlab.report'} <= set(digests['library'])
    row = Store().get(out['run_id'])
    assert row['status'] == 'ok' and row['metrics'] == metrics and row['params'] == params and row['digests'] == digests
    assert row['report'] == str(rdir / 'report.html') and row['git_commit'] == env['commit'] and row['duration'] > 0
    assert r.stderr.count('\n') < 5 and 'ERROR' not in r.stderr and 'Traceback' not in r.stderr, r.stderr   # nothing alarming


def test_the_report_is_self_contained_and_readable(shared):
    d, out, _ = shared
    html = Path(out['report']).read_text()
    assert html.count('<img') >= 5 and 'Run info' in html and 'Hopes vs results' in html
    assert f"{out['metrics']['knn_test_acc']:.2%}" in html and f"{out['metrics']['logistic_test_acc']:.2%}" in html
    assert 'run = begin(globals())' not in html                  # code hidden by default
    assert not re.search(r'<(script|link)\b[^>]*(src|href)="(https?:)?//', html)   # nothing fetched from the network
    assert 'No description has been provided' not in html and 'alt="kNN on raw pixels (euclidean)"' in html
    assert re.search(r'<td>(met|NOT met)</td>', html)             # hopes in words every font has, no emoji


def test_same_run_gives_same_metrics(shared):
    _, first, _ = shared
    again = json.loads(reprlab('run', 'quickstart', *TINY, '-p', 'metric', 'euclidean', '--json').stdout)
    assert again['run_id'] != first['run_id'] and again['metrics'] == first['metrics']


@pytest.mark.parametrize('args, expected', [
    (['-p', 'not_a_param', '1'], "unknown parameter(s) 'not_a_param'"),
    (['-p', 'n_tran', '1'], "unknown parameter(s) 'n_tran'; did you mean 'n_train' for 'n_tran'?"),
    (['-p', 'n_train', 'banana'], "parameter 'n_train' expects int (default 0), got 'banana'"),
    (['-p', 'C', 'big'], "parameter 'C' expects float (default 1.0), got 'big'"),
])
def test_bad_parameters_rejected_before_execution(lab, args, expected):
    r = reprlab('run', 'quickstart', *args)
    assert r.returncode == 2
    assert expected in r.stderr and 'Valid parameters:' in r.stderr and 'n_train: int = 0' in r.stderr
    assert not (lab / 'reports').exists() and not (lab / 'results.sqlite').exists()   # nothing ran


def test_unknown_experiment(lab):
    r = reprlab('run', 'no_such_experiment')
    assert r.returncode == 2 and "unknown experiment 'no_such_experiment'; known: " in r.stderr
    known = r.stderr.split('known: ')[1].split(' (in ')[0].split(', ')
    assert 'quickstart' in known and '_template' not in known


def test_run_help_points_to_list():
    r = reprlab('run', '--help')
    assert r.returncode == 0 and '`reprlab list`' in r.stdout and '--timeout' in r.stdout


def test_params_file_typed_and_checked(lab, tmp_path):
    good = tmp_path / 'p.yaml'
    good.write_text('n_train: 200\nks: "1,3"\nC: 2\n')
    r = reprlab('run', 'quickstart', '--params-file', good, '-p', 'n_train', '250', '--json')
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)['params']
    assert p['n_train'] == 250 and p['ks'] == [1, 3] and p['C'] == 2.0          # -p wins over the file
    for text, msg in [('n_train: many\n', "parameter 'n_train' expects int (default 0), got 'many'"),
                      ('C: -2\n', "parameter 'C' = -2.0: expected > 0")]:
        bad = tmp_path / 'bad.yaml'
        bad.write_text(text)
        r = reprlab('run', 'quickstart', '--params-file', bad)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_failed_run_keeps_report_and_row_and_results_lists_all(shared, lab_experiments, monkeypatch):
    d, ok, _ = shared
    monkeypatch.setenv('REPRLAB_REPORTS', str(d / 'reports')); monkeypatch.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
    new_experiment_notebook(lab_experiments / 'fails.ipynb', 'x: int = 1  # a number [min 0]',
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\n"
                            "log_metrics(before_failure=x)\nraise RuntimeError(f'gave up at step {x}')",
                            summary='Always fails.')
    r = reprlab('run', 'fails', '-p', 'x', '7', '--json')
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out['status'] == 'failed' and out['error'] == 'RuntimeError: gave up at step 7'
    assert out['metrics'] == {'before_failure': 7}                    # what was recorded before the failure is kept
    html = (d / 'reports' / 'fails' / out['run_id'] / 'report.html').read_text()
    text = re.sub(r'<[^>]+>', '', html)                                # code is syntax-highlighted: compare the text
    assert 'gave up at step 7' in text and "raise RuntimeError(f'gave up at step {x}')" in text   # the failing cell is shown
    r = reprlab('results', '--format', 'tsv')
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    header, rows = lines[0].split('\t'), [dict(zip(lines[0].split('\t'), l.split('\t'))) for l in lines[1:]]
    assert (out['run_id'], 'failed') in {(x['id'], x['status']) for x in rows} and (ok['run_id'], 'ok') in {(x['id'], x['status']) for x in rows}
    assert 'knn_test_acc' in header and 'before_failure' in header


def test_results_sort_by_the_declared_primary_metric_and_fit_the_terminal(shared, monkeypatch):
    d, first, _ = shared
    monkeypatch.setenv('REPRLAB_REPORTS', str(d / 'reports')); monkeypatch.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
    r = reprlab('run', 'quickstart', '-p', 'n_train', '100', '-p', 'ks', '9', '--json')
    assert r.returncode == 0, r.stderr
    rows = json.loads(reprlab('results', 'quickstart', '--format', 'json').stdout)
    accs = [x['knn_test_acc'] for x in rows]
    assert accs == sorted(accs, reverse=True)                          # knn_test_acc is quickstart's primary metric, higher is better
    rows = json.loads(reprlab('results', 'quickstart', '--sort', 'n_train', '--ascending', '--format', 'json').stdout)
    assert [x['n_train'] for x in rows] == sorted(x['n_train'] for x in rows)
    r = reprlab('results', 'quickstart', env={**os.environ, 'COLUMNS': '100'})
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and max(map(len, lines[:-1])) <= 100, r.stdout
    assert lines[0].split()[:3] == ['id', 'status', 'param.n_train'] and 'knn_test_acc' in lines[0]   # varying parameters, then metrics
    assert 'more column(s)' in lines[-1] and '--wide' in lines[-1]
    assert len(reprlab('results', 'quickstart', '--wide').stdout.splitlines()[0]) > 100
    r = reprlab('results', '--sort', 'no_such_metric')
    assert r.returncode == 2 and "cannot sort by 'no_such_metric'" in r.stderr and 'knn_test_acc' in r.stderr


def test_plain_papermill_runs_the_experiment(lab, tmp_path):
    out = tmp_path / 'out.ipynb'
    r = subprocess.run([str(BIN / 'papermill'), str(ROOT / 'nbs/experiments/quickstart.ipynb'), str(out),
                        '-p', 'n_train', '200', '--cwd', str(ROOT / 'nbs/experiments')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Unable to parse' not in r.stderr and 'unknown parameter' not in r.stderr   # papermill reads the constraints' lines
    text = out.read_text()
    assert 'Hopes vs results' in text and 'interactive (not recorded)' in text
    assert not (lab / 'reports').exists()                          # no run folder outside `reprlab run`


def test_the_command_starts_without_heavy_imports(tmp_path):
    "--help, list and results import neither torch nor papermill (start-up is measured in benchmarks, not here)."
    code = ("import sys, io, contextlib; from reprlab.cli import main\n"
            "for argv in (['list'], ['results', '--format', 'json']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()): main(argv)\n"
            "print(sorted(m for m in ('torch', 'papermill', 'distributed', 'sklearn') if m in sys.modules))")
    r = subprocess.run([str(BIN / 'python'), '-c', code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={**os.environ, 'REPRLAB_STORE': str(tmp_path / 'results.sqlite')})
    assert r.stdout.strip().splitlines()[-1] == '[]', r.stdout + r.stderr
