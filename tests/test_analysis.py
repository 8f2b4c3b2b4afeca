"""Across runs, on real runs: seed groups from a sweep with --seeds, comparisons, leaderboards, stale results."""
import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from conftest import ROOT, reprlab

from reprlab.analysis import groups as seed_groups
from reprlab.experiment import new_experiment_notebook
from reprlab.store import Store

TINY = ['-p', 'n_train', '200', '-p', 'ks', '1,3']


@pytest.fixture(scope='module')
def seeded(tmp_path_factory):
    "One run of quickstart (as `make demo` makes: cosine, seed 0), then a 2 x 3-seed sweep (metric cosine / euclidean, seeds 0, 1, 2)."
    d = tmp_path_factory.mktemp('analysis')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('REPRLAB_REPORTS', str(d / 'reports')); mp.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
        mp.setenv('REPRLAB_DEVICE', 'cpu')
        demo = reprlab('run', 'quickstart', *TINY, '--json')
        assert demo.returncode == 0, demo.stderr
        r = reprlab('sweep', 'quickstart', '--grid', 'metric=cosine,euclidean', '--seeds', '3', *TINY, '--name', 'seeds',
                    '--workers', '2', '--no-progress', timeout=900)
        assert r.returncode == 0, r.stderr + r.stdout
        r.demo = json.loads(demo.stdout)['run_id']
        yield d, r


def test_seed_groups_have_n_3_and_the_runs_means(seeded):
    d, r = seeded
    runs = Store().runs('quickstart', sweep='seeds')
    assert len(runs) == 6 and set(runs.status) == {'ok'} and sorted(runs.seed) == [0, 0, 1, 1, 2, 2]
    groups = json.loads(reprlab('results', 'quickstart', '--by-config', '--format', 'json').stdout)
    assert len(groups) == 2 and [g['n'] for g in groups] == [3, 3] and all(g['seed_values'] == [0, 1, 2] for g in groups)
    assert {g['metric']: g['duplicates'] for g in groups} == {'cosine': [r.demo], 'euclidean': []}   # seed 0 of cosine ran twice
    for g in groups:
        accs = runs[runs.metric == g['metric']].knn_test_acc
        assert g['knn_test_acc'] == pytest.approx(accs.mean()) and g['knn_test_acc.std'] == pytest.approx(accs.std(ddof=1))
        assert g['knn_test_acc.ci95'] == pytest.approx(4.302652729911275 * accs.std(ddof=1) / 3 ** 0.5)
    means = [g['knn_test_acc'] for g in groups]
    assert means == sorted(means, reverse=True)                      # ranked by the declared primary metric
    table = reprlab('results', 'quickstart', '--by-config').stdout
    assert re.search(r'knn_test_acc 95% CI', table) and ' ± ' in table
    assert seed_groups(Store().runs("quickstart"))["n"].tolist() == [3, 3]


def test_the_sweep_summary_ranks_by_the_primary_metric_with_error_bars(seeded):
    d, r = seeded
    summary = d / 'reports' / 'quickstart' / 'sweeps' / 'seeds'
    dialog = (summary / 'dialog.md').read_text()
    assert 'The best configuration by the mean knn_test_acc (largest first) is **metric = ' in dialog
    assert 'std over 3 seeds' in dialog and 'n_train' not in dialog.split('best configuration')[1].split('\n')[0]
    assert (summary / 'figures' / 'by_metric.png').exists()
    html = (summary / 'report.html').read_text()
    link = re.search(r'href="(\.\./\.\./[^"]+/report\.html)"', html)   # the best run, linked relatively
    assert link and (summary / link.group(1)).resolve().exists()


def test_compare_two_runs_lists_exactly_the_differing_parameters(seeded):
    d, _ = seeded
    runs = Store().runs('quickstart', sweep='seeds').sort_values(['metric', 'seed'])
    a, b = runs.iloc[0], runs.iloc[4]                                 # cosine seed 0, euclidean seed 1
    r = reprlab('compare', a.id, b.id)
    assert r.returncode == 0, r.stderr
    block = r.stdout.split('parameters that differ:\n')[1].split('\n\n')[0].splitlines()
    assert [l.split(':')[0].strip() for l in block] == ['metric', 'seed']
    assert "metric: cosine | euclidean" in r.stdout and 'knn_test_acc' in r.stdout
    page = Path(r.stdout.strip().splitlines()[-1].split('page: ')[1])
    html = page.read_text()
    assert page.exists() and '<script' not in html and html.count('data:image/png;base64') >= 8   # figures side by side


def test_compare_two_configurations_says_whether_the_difference_exceeds_the_seed_spread(seeded):
    groups = json.loads(reprlab('results', 'quickstart', '--by-config', '--format', 'json').stdout)
    r = reprlab('compare', groups[0]['config'], groups[1]['config'][:6], '--html', seeded[0] / 'cmp.html')
    assert r.returncode == 0, r.stderr
    assert re.search(r'knn_test_acc .* (beyond|within) the seed spread', r.stdout), r.stdout
    assert 'n=3' in r.stdout and (seeded[0] / 'cmp.html').exists()
    links = re.findall(r'href="([^"]+)"', (seeded[0] / 'cmp.html').read_text())   # relative: the page moves with the reports
    assert len(links) == 2 and all(not l.startswith(('/', 'file:')) and (seeded[0] / l).resolve().is_file() for l in links), links
    r = reprlab('compare', groups[0]['config'], 'nonexistent')
    assert r.returncode == 2 and "'nonexistent' is neither a run id nor a configuration id" in r.stderr


def test_leaderboard_follows_the_declared_direction(seeded):
    r = reprlab('leaderboard', 'knn_test_acc')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == 'knn_test_acc: higher is better'
    means = [float(l.split()[4]) for l in lines[2:4]]                 # rank, dataset, experiment, n, mean
    assert means == sorted(means, reverse=True) and 'quickstart' in lines[2]
    rows = json.loads(reprlab('leaderboard', 'knn_test_acc', '--lower', '--format', 'json').stdout)
    assert [x['mean'] for x in rows] == sorted(x['mean'] for x in rows) and rows[0]['n'] == 3
    r = reprlab('leaderboard', 'no_such_metric')
    assert r.returncode == 2 and "no successful run" in r.stderr


PROBE = ROOT / 'reprlab' / '_test_digest_probe.py'


def test_editing_the_library_makes_the_next_sweep_rerun_its_points(lab_experiments, lab):
    "A run records the digest of each reprlab module it imported; a sweep resumes only runs whose code is unchanged."
    new_experiment_notebook(lab_experiments / 'uses_lib.ipynb', 'x: float = 1.0  # input [> 0]',
                            "from reprlab.report import begin, log_metrics\nfrom reprlab._test_digest_probe import f\n"
                            "run = begin(globals())\nlog_metrics(y=f(x))", metrics={'y': 'f of x [higher, primary]'})
    try:
        PROBE.write_text('def f(x): return x + 1\n')
        sweep = ['sweep', 'uses_lib', '--grid', 'x=1,2', '--workers', '1', '--no-progress', '--no-summary', '--name', 'lib']
        first = reprlab(*sweep)
        assert first.returncode == 0 and '2 points, 0 already completed, 2 to run' in first.stdout, first.stdout + first.stderr
        again = reprlab(*sweep)
        assert '2 points, 2 already completed, 0 to run' in again.stdout, again.stdout
        PROBE.write_text('def f(x): return x + 2\n')                   # a library function changed
        stale = json.loads(reprlab('results', 'uses_lib', '--stale', '--format', 'json').stdout)
        assert {x['stale'] for x in stale} == {'library (_test_digest_probe)'}
        third = reprlab(*sweep)
        assert '2 points, 0 already completed, 2 to run' in third.stdout, third.stdout
        rows = Store().runs('uses_lib', sweep='lib')
        assert sorted(rows.y) == [2.0, 3.0, 3.0, 4.0]                    # the old results stay; the new ones use the new code
    finally:
        PROBE.unlink(missing_ok=True)


# --- counted once, ids that travel, leaderboards that say what they rank, integers, empty results, --html DIR ----------

def _row(st, run_id, experiment, params, metrics=None, status='ok', minute=0, notebook='nb1'):
    st.add(id=run_id, experiment=experiment, params=params, status=status, started=f'2026-01-01 10:{minute:02d}:00',
           metrics=metrics or {}, notebook_hash=notebook)


def test_a_seed_run_twice_counts_once_and_the_repeat_is_named(lab):
    st = Store()
    _row(st, 'demo', 'quickstart', {'metric': 'cosine', 'seed': 0}, {'knn_test_acc': 0.50}, minute=0)   # make demo
    for s, acc in enumerate([0.90, 0.92, 0.94]):                                                          # then a 3-seed sweep
        _row(st, f'sweep{s}', 'quickstart', {'metric': 'cosine', 'seed': s}, {'knn_test_acc': acc}, minute=1 + s)
    for s, acc in enumerate([0.80, 0.81, 0.82]):
        _row(st, f'euc{s}', 'quickstart', {'metric': 'euclidean', 'seed': s}, {'knn_test_acc': acc}, minute=5 + s)
    groups = {g['metric']: g for g in json.loads(reprlab('results', 'quickstart', '--by-config', '--format', 'json').stdout)}
    cos = groups['cosine']
    assert cos['n'] == 3 and cos['seed_values'] == [0, 1, 2] and cos['duplicates'] == ['demo'], cos
    assert cos['knn_test_acc'] == pytest.approx(0.92) and groups['euclidean']['duplicates'] == []
    table = reprlab('results', 'quickstart', '--by-config').stdout
    assert 'left out 1 repeated run(s): demo (config ' + cos['config'] + ')' in table, table
    r = reprlab('compare', cos['config'], groups['euclidean']['config'])
    assert r.returncode == 0, r.stderr
    assert f"(n=3, runs sweep0, sweep1, sweep2); left out, their seed is counted once (the newest fresh run): demo" in r.stdout, r.stdout
    assert re.search(r'knn_test_acc .* beyond the seed spread', r.stdout), r.stdout


def test_configuration_ids_from_results_work_in_compare_beside_other_experiments(lab):
    st = Store()
    for s in range(2):
        _row(st, f'a{s}', 'pca_knn', {'n_components': 20, 'k': 5, 'seed': s}, {'acc': 0.90 + s / 100}, minute=s)
        _row(st, f'b{s}', 'pca_knn', {'n_components': 50, 'k': 5, 'seed': s}, {'acc': 0.80 + s / 100}, minute=2 + s)
    _row(st, 'x', 'other', {'lr': 0.1}, {'acc': 0.5}, minute=9)          # lacks n_components and k: pandas makes them floats
    ids = [g['config'] for g in json.loads(reprlab('results', 'pca_knn', '--by-config', '--format', 'json').stdout)]
    assert len(ids) == 2
    everything = json.loads(reprlab('results', '--by-config', '--format', 'json').stdout)
    assert {g['config'] for g in everything if g['experiment'] == 'pca_knn'} == set(ids)   # the same ids whatever the store holds
    r = reprlab('compare', *ids)
    assert r.returncode == 0, r.stderr
    assert 'n_components: 20 | 50' in r.stdout, r.stdout
    table = reprlab('results', 'pca_knn', '--by-config', env={**os.environ, 'COLUMNS': '200'}).stdout
    r = reprlab('compare', *re.findall(r'\b[0-9a-f]{10}\b', table))         # ids copied from the table
    assert r.returncode == 0, r.stderr


def test_the_leaderboard_shows_the_dataset_and_the_configuration_and_ranks_within_a_dataset(lab):
    st = Store()
    _row(st, 'kh', 'kh_readout', {'dataset': 'mnist', 'epochs': 200}, {'test_acc': 0.98})
    _row(st, 'c1', 'centroid_clustering', {'dataset': 'corel_hard', 'lr': 0.002}, {'test_acc': 0.84}, minute=1)
    _row(st, 'c2', 'centroid_clustering', {'dataset': 'corel_hard', 'lr': 0.01}, {'test_acc': 0.70}, minute=2)
    _row(st, 'q1', 'quickstart', {'dataset': 'digits', 'n_train': 500}, {'test_acc': 0.95}, minute=3, notebook='old')
    _row(st, 'q2', 'quickstart', {'dataset': 'digits', 'n_train': 500}, {'test_acc': 0.96}, minute=4, notebook='new')
    rows = json.loads(reprlab('leaderboard', 'test_acc', '--higher', '--format', 'json').stdout)
    assert [(x['dataset'], x['rank'], x['best_run']) for x in rows] == [
        ('mnist', 1, 'kh'), ('digits', 1, 'q2'), ('digits', 2, 'q1'), ('corel_hard', 1, 'c1'), ('corel_hard', 2, 'c2')]
    assert all(re.fullmatch(r'[0-9a-f]{10}', x['config']) for x in rows)
    by_run = {x['best_run']: x['parameters'] for x in rows}
    assert by_run['c1'] == 'lr=0.002' and by_run['c2'] == 'lr=0.01'
    assert by_run['q1'] == 'notebook=old' and by_run['q2'] == 'notebook=new'      # same values, two versions of the notebook
    r = reprlab('leaderboard', 'test_acc', '--higher', env={**os.environ, 'COLUMNS': '160'})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == 'test_acc: higher is better; ranked within each of 3 datasets'
    assert lines[1].split()[:6] == ['rank', 'dataset', 'experiment', 'n', 'mean', '±']
    assert lines[5].split()[:3] == ['1', 'corel_hard', 'centroid_clustering'] and rows[3]['config'] in lines[5] and 'lr=0.002' in lines[5]


def test_tsv_and_csv_keep_integers_as_integers(lab):
    st = Store()
    _row(st, 'q', 'quickstart', {'n_train': 200, 'C': 1.0, 'seed': 0}, {'knn_test_acc': 0.9, 'best_k': 3})
    _row(st, 'f', 'quickstart', {'n_train': 300, 'C': 2.0, 'seed': 0}, status='failed', minute=1)   # no metrics: gaps
    _row(st, 'o', 'other', {'lr': 0.5}, {'acc': 0.5}, minute=2)                                       # no n_train: a gap
    for fmt, sep in (('tsv', '\t'), ('csv', ',')):
        rows = list(csv.DictReader(io.StringIO(reprlab('results', '--format', fmt).stdout), delimiter=sep))
        q, f = (next(r for r in rows if r['id'] == i) for i in ('q', 'f'))
        assert (q['n_train'], q['seed'], q['best_k'], q['C']) == ('200', '0', '3', '1.0'), q
        assert (f['n_train'], f['best_k']) == ('300', ''), f
        rows = list(csv.DictReader(io.StringIO(reprlab('results', '--by-config', '--format', fmt).stdout), delimiter=sep))
        assert sorted(r['n_train'] for r in rows) == ['', '200', '300'], rows


@pytest.mark.parametrize('with_runs', [False, True])
def test_results_by_config_with_no_matching_runs_prints_an_empty_result_in_every_format(lab, with_runs):
    if with_runs: _row(Store(), 'q', 'quickstart', {'n_train': 200, 'seed': 0}, {'knn_test_acc': 0.9})
    args = ['quickstart', '--status', 'interrupted'] if with_runs else ['quickstart']      # runs, none of them matching
    for by in ([], ['--by-config']):
        out = {}
        for fmt in ('json', 'tsv', 'csv', 'table'):
            r = reprlab('results', *args, *by, '--format', fmt)
            assert r.returncode == 0 and not r.stderr, (args, by, fmt, r.stderr)
            out[fmt] = r.stdout
        assert json.loads(out['json']) == []
        assert out['tsv'].count('\n') == 1 and 'experiment' in out['tsv'].rstrip('\n').split('\t')   # the header alone
        assert out['csv'].count('\n') == 1 and 'experiment' in out['csv'].rstrip('\n').split(',')
        assert out['table'].strip() == '(no runs)'
    if with_runs:
        for fmt in ('json', 'tsv', 'csv'):
            r = reprlab('results', 'quickstart', '--by-config', '--format', fmt)
            assert r.returncode == 0 and ('"n":1' in r.stdout if fmt == 'json' else len(r.stdout.splitlines()) == 2), r.stdout


def test_compare_html_into_an_existing_folder_writes_the_page_inside_it(lab):
    st = Store()
    _row(st, 'run-a', 'quickstart', {'metric': 'cosine'}, {'knn_test_acc': 0.9})
    _row(st, 'run-b', 'quickstart', {'metric': 'euclidean'}, {'knn_test_acc': 0.8}, minute=1)
    folder = lab / 'pages'
    folder.mkdir()
    r = reprlab('compare', 'run-a', 'run-b', '--html', folder)
    assert r.returncode == 0, r.stderr
    page = folder / 'compare-run-a-run-b.html'
    assert r.stdout.strip().endswith(f'page: {page}') and '<h1>Comparison</h1>' in page.read_text()
    r = reprlab('compare', 'run-a', 'run-b', '--html', lab / 'named.html')               # a file name is still a file name
    assert r.returncode == 0 and (lab / 'named.html').is_file()
