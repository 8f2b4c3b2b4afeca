"""The reprlab command end to end: list, run (ok, failed, rejected), results, plain papermill."""
import json
import re
import subprocess

import pytest
from conftest import BIN, ROOT, reprlab

from reprlab.runner import new_experiment_notebook
from reprlab.store import Store

TINY = ['-p', 'n_train', '300', '-p', 'ks', '1,3,5']


def test_list_shows_experiments_parameters_and_descriptions(lab):
    r = reprlab('list')
    assert r.returncode == 0, r.stderr
    assert re.search(r'^quickstart — kNN, linear and nearest-centroid probes', r.stdout, re.M)
    assert "k: int = 5    # neighbours of the kNN probe before the scan" in r.stdout
    assert '_template' not in r.stdout


def test_run_quickstart_writes_report_files_and_row(lab):
    r = reprlab('run', 'quickstart', *TINY, '-p', 'metric', 'euclidean', '--json')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)                                   # exactly one JSON object on stdout
    assert out['status'] == 'ok' and out['experiment'] == 'quickstart'
    d = lab / 'reports' / 'quickstart' / out['run_id']
    assert out['run_dir'] == str(d) and out['report'] == str(d / 'report.html')
    for f in ('report.ipynb', 'report.html', 'params.json', 'metrics.json', 'environment.json', 'hopes.json', 'dialog.md'):
        assert (d / f).is_file(), f
    figs = sorted(p.name for p in (d / 'figures').glob('*.png'))
    assert figs == ['confusion.png', 'knn_scan.png', 'mistakes.png', 'probes.png', 'samples.png']
    params = json.loads((d / 'params.json').read_text())
    assert params['n_train'] == 300 and params['metric'] == 'euclidean' and params['k'] == 5 and params['seed'] == 0
    metrics = json.loads((d / 'metrics.json').read_text())
    assert metrics == out['metrics'] and metrics['n_train'] == 300 and 0.5 < metrics['knn_test_acc'] <= 1
    env = json.loads((d / 'environment.json').read_text())
    assert env['status'] == 'ok' and env['seed'] == 0 and env['device'] == 'cpu' and env['duration'] > 0
    assert re.fullmatch(r'[0-9a-f]{40}', env['commit']) and isinstance(env['dirty'], bool)
    assert env['versions']['torch'] and env['versions']['reprlab']
    html = (d / 'report.html').read_text()
    assert html.count('<img') >= 5 and 'Run info' in html and 'Hopes vs results' in html
    # the analysis dialog carries this run's own numbers
    assert f"{metrics['knn_test_acc']:.2%}" in html and f"{metrics['logistic_test_acc']:.2%}" in html
    assert 'run = begin(globals())' not in html                  # code hidden by default
    row = Store().get(out['run_id'])
    assert row['status'] == 'ok' and row['metrics'] == metrics and row['params'] == params
    assert row['report'] == str(d / 'report.html') and row['git_commit'] == env['commit'] and row['duration'] > 0


def test_same_run_gives_same_metrics(lab):
    outs = [json.loads(reprlab('run', 'quickstart', *TINY, '-p', 'seed', '3', '--json').stdout) for _ in range(2)]
    assert outs[0]['run_id'] != outs[1]['run_id']
    assert outs[0]['metrics'] == outs[1]['metrics']


@pytest.mark.parametrize('args, expected', [
    (['-p', 'not_a_param', '1'], "unknown parameter(s) 'not_a_param'"),
    (['-p', 'k', 'banana'], "parameter 'k' expects int (default 5), got 'banana'"),
    (['-p', 'C', 'big'], "parameter 'C' expects float (default 1.0), got 'big'"),
])
def test_bad_parameters_rejected_before_execution(lab, args, expected):
    r = reprlab('run', 'quickstart', *args)
    assert r.returncode == 2
    assert expected in r.stderr and 'Valid parameters:' in r.stderr and 'n_train: int = 0' in r.stderr
    assert not (lab / 'reports').exists()                         # nothing ran
    assert len(Store().runs()) == 0


def test_unknown_experiment(lab):
    r = reprlab('run', 'no_such_experiment')
    assert r.returncode == 2 and "unknown experiment 'no_such_experiment'; known: " in r.stderr
    known = r.stderr.split('known: ')[1].split(' (in ')[0].split(', ')
    assert 'quickstart' in known and '_template' not in known


def test_params_file_typed_and_checked(lab, tmp_path):
    good = tmp_path / 'p.yaml'
    good.write_text('n_train: 200\nks: "1,3"\nC: 2\n')
    r = reprlab('run', 'quickstart', '--params-file', good, '-p', 'n_train', '250', '--json')
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)['params']
    assert p['n_train'] == 250 and p['ks'] == '1,3' and p['C'] == 2.0          # -p wins over the file
    bad = tmp_path / 'bad.yaml'
    bad.write_text('n_train: many\n')
    r = reprlab('run', 'quickstart', '--params-file', bad)
    assert r.returncode == 2 and "parameter 'n_train' expects int (default 0), got 'many'" in r.stderr


def test_failed_run_keeps_report_and_row_and_results_lists_all(lab_experiments, lab):
    new_experiment_notebook(lab_experiments / 'fails.ipynb', 'x: int = 1  # a number',
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\n"
                            "log_metrics(before_failure=x)\nraise RuntimeError(f'diverged at step {x}')",
                            summary='Always fails.')
    r = reprlab('run', 'fails', '-p', 'x', '7', '--json')
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out['status'] == 'failed' and out['error'] == 'RuntimeError: diverged at step 7'
    assert out['metrics'] == {'before_failure': 7}                    # what was recorded before the failure is kept
    html = (lab / 'reports' / 'fails' / out['run_id'] / 'report.html').read_text()
    text = re.sub(r'<[^>]+>', '', html)                                # code is syntax-highlighted: compare the text
    assert 'diverged at step 7' in text and "raise RuntimeError(f'diverged at step {x}')" in text   # the failing cell is shown
    ok = json.loads(reprlab('run', 'quickstart', *TINY, '--json').stdout)
    r = reprlab('results', '--format', 'tsv')
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    header, rows = lines[0].split('\t'), [dict(zip(lines[0].split('\t'), l.split('\t'))) for l in lines[1:]]
    assert {(x['id'], x['status']) for x in rows} == {(out['run_id'], 'failed'), (ok['run_id'], 'ok')}
    assert 'knn_test_acc' in header and 'before_failure' in header


def test_results_sort_filter_and_formats(lab):
    runs = [json.loads(reprlab('run', 'quickstart', *TINY, '-p', 'k', k, '-p', 'ks', k, '--json').stdout) for k in ('1', '9')]
    r = reprlab('results', 'quickstart', '--sort', 'knn_test_acc', '--format', 'json')
    rows = json.loads(r.stdout)
    accs = [x['knn_test_acc'] for x in rows]
    assert accs == sorted(accs, reverse=True) and {x['id'] for x in rows} == {x['run_id'] for x in runs}
    r = reprlab('results', 'quickstart', '--sort', 'k', '--ascending', '--format', 'csv')
    assert [l.split(',')[0] for l in r.stdout.strip().splitlines()[1:]] == [x['run_id'] for x in runs]
    r = reprlab('results')
    assert r.returncode == 0 and runs[0]['run_id'] in r.stdout
    r = reprlab('results', '--sort', 'no_such_metric')
    assert r.returncode == 2 and "cannot sort by 'no_such_metric'" in r.stderr and 'knn_test_acc' in r.stderr


def test_plain_papermill_runs_the_experiment(lab, tmp_path):
    out = tmp_path / 'out.ipynb'
    r = subprocess.run([str(BIN / 'papermill'), str(ROOT / 'nbs/experiments/quickstart.ipynb'), str(out),
                        '-p', 'n_train', '200', '--cwd', str(ROOT / 'nbs/experiments')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert 'Hopes vs results' in text and 'interactive (not recorded)' in text
    assert not (lab / 'reports').exists()                          # no run folder outside `reprlab run`
