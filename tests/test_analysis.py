"""Across runs, on real runs: seed groups from a sweep with --seeds, comparisons, leaderboards, stale results."""
import json
import os
import re
from pathlib import Path

import pytest
from conftest import ROOT, reprlab

from reprlab.runner import new_experiment_notebook
from reprlab.store import Store

TINY = ['-p', 'n_train', '200', '-p', 'ks', '1,3']


@pytest.fixture(scope='module')
def seeded(tmp_path_factory):
    "A 2 x 3-seed sweep of quickstart (metric cosine / euclidean, seeds 0, 1, 2): six real runs."
    d = tmp_path_factory.mktemp('analysis')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('REPRLAB_REPORTS', str(d / 'reports')); mp.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
        mp.setenv('REPRLAB_DEVICE', 'cpu')
        r = reprlab('sweep', 'quickstart', '--grid', 'metric=cosine,euclidean', '--seeds', '3', *TINY, '--name', 'seeds',
                    '--workers', '2', '--no-progress', timeout=900)
        assert r.returncode == 0, r.stderr + r.stdout
        yield d, r


def test_seed_groups_have_n_3_and_the_runs_means(seeded):
    d, r = seeded
    runs = Store().runs('quickstart', sweep='seeds')
    assert len(runs) == 6 and set(runs.status) == {'ok'} and sorted(runs.seed) == [0, 0, 1, 1, 2, 2]
    groups = json.loads(reprlab('results', 'quickstart', '--by-config', '--format', 'json').stdout)
    assert len(groups) == 2 and [g['n'] for g in groups] == [3, 3] and all(g['seed_values'] == [0, 1, 2] for g in groups)
    for g in groups:
        accs = runs[runs.metric == g['metric']].knn_test_acc
        assert g['knn_test_acc'] == pytest.approx(accs.mean()) and g['knn_test_acc.std'] == pytest.approx(accs.std(ddof=1))
        assert g['knn_test_acc.ci95'] == pytest.approx(4.302652729911275 * accs.std(ddof=1) / 3 ** 0.5)
    means = [g['knn_test_acc'] for g in groups]
    assert means == sorted(means, reverse=True)                      # ranked by the declared primary metric
    table = reprlab('results', 'quickstart', '--by-config').stdout
    assert re.search(r'knn_test_acc 95% CI', table) and ' ± ' in table
    assert Store().groups('quickstart')['n'].tolist() == [3, 3]


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
    means = [float(l.split()[3]) for l in lines[2:4]]
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
