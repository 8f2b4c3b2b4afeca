"""The JupyterLab side: explorers and the results browser driven through their callbacks and widgets (no browser),
and live plots that leave static figures, not widgets, in recorded runs."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, reprlab

from reprlab.competitive import DreamComp, KrotovHopfield, PrototypeExplorer
from reprlab.data import load_dataset
from reprlab.plots import LivePlot
from reprlab.browse import ResultsBrowser
from reprlab.store import Store, import_runs
from reprlab.topo import ReconstructionExplorer, TopoSparseDream

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


@pytest.fixture(scope='module')
def digits():
    return load_dataset('digits', seed=0)


def test_prototype_explorer_draws_the_selected_neurons_synapses(digits):
    dc = DreamComp(12, epochs=2, seed=0, device='cpu', progress=False).fit(digits.X_train, digits.y_train)
    W = dc.weights
    ex = PrototypeExplorer(dc, (8, 8)).with_wins(digits.X_test)
    for i in (0, 7, 11):
        f = ex.figure(i)
        assert np.allclose(f.axes[0].images[0].get_array(), W[i, :64].reshape(8, 8))
        assert np.allclose([p.get_height() for p in f.axes[1].patches], W[i, 64:])      # the label synapses, one bar per class
        wins = int((dc.winners(digits.X_test) == i).sum())
        assert f.axes[0].get_title() == f'neuron {i}, wins {wins}'
    # the widget: moving the slider calls the same callback and makes that neuron current
    box = ex.widget()
    slider = box.children[0]
    assert (slider.min, slider.max, slider.value) == (0, 11, 11)
    slider.value = 4
    assert ex.index == 4
    with pytest.raises(IndexError, match='neuron 12'):
        ex.figure(12)
    kh = KrotovHopfield(10, k=3, epochs=1, seed=0, device='cpu', progress=False).fit(digits.X_train)
    f = PrototypeExplorer(kh, (8, 8)).figure(5)
    assert len(f.axes) == 1 and np.allclose(f.axes[0].images[0].get_array(), kh.weights[5].reshape(8, 8))
    with pytest.raises(ValueError, match='needs 100 synapses'):
        PrototypeExplorer(kh, (10, 10))


def test_reconstruction_explorer_shows_input_activity_and_reconstruction(digits):
    m = TopoSparseDream(4, 4, lr=0.05, sparsity=0.1, excitation_radius=1, epochs=1, seed=0, device='cpu', progress=False).fit(
        digits.X_train)
    ex = ReconstructionExplorer(m, digits.X_test, (8, 8), labels=digits.y_test)
    f = ex.figure(9)
    x = digits.X_test[9].astype(np.float32)
    o = m.transform(x[None])[0]
    a_in, a_act, a_rec = f.axes
    assert np.allclose(a_in.images[0].get_array(), x.reshape(8, 8))
    assert np.allclose(a_act.images[0].get_array(), o.reshape(4, 4))
    assert np.allclose(a_rec.images[0].get_array(), (o @ m.weights).reshape(8, 8), atol=1e-6)
    assert a_in.get_title() == f'input 9: {digits.y_test[9]}'
    box = ex.widget()
    box.children[0].value = 2
    assert ex.index == 2


@pytest.fixture
def reference_store(tmp_path):
    st = Store(tmp_path / 'results.sqlite')
    import_runs(ROOT / 'reports' / 'reference', st)
    return st


def test_import_runs_reads_every_reference_run_once(reference_store, tmp_path):
    folders = [p.parent for p in (ROOT / 'reports' / 'reference').rglob('environment.json')
               if 'run_id' in json.loads(p.read_text())]
    df = reference_store.runs()
    assert len(df) == len(folders) and set(df.id) == {d.name for d in folders}
    for d in folders[:3]:
        row = reference_store.get(d.name)
        assert row['metrics'] == json.loads((d / 'metrics.json').read_text())
        assert row['params'] == json.loads((d / 'params.json').read_text())
    assert import_runs(ROOT / 'reports' / 'reference', reference_store) == []
    bad = tmp_path / 'bad' / 'r1'; bad.mkdir(parents=True)
    (bad / 'environment.json').write_text(json.dumps({'run_id': 'r1', 'experiment': 'x'}))
    with pytest.raises(FileNotFoundError, match='without params.json'):
        import_runs(tmp_path / 'bad', reference_store)
    with pytest.raises(FileNotFoundError, match='no such folder'):
        import_runs(tmp_path / 'nowhere', reference_store)


def test_results_browser_sorts_plots_and_opens_runs(reference_store, tmp_path):
    rb = ResultsBrowser(reference_store, 'centroid_clustering', 'val_acc')
    runs = reference_store.runs('centroid_clustering')
    t = rb.table()
    assert list(t.id) == list(runs.sort_values('val_acc', ascending=False, kind='stable').id)
    assert {'lr', 'batch_size', 'layers'} <= set(t.attrs['varying']) and 'dataset' not in t.columns    # only parameters that differ
    bars = rb.figure().axes[0].patches
    assert sorted(b.get_width() for b in bars) == sorted(runs.val_acc)
    rb.ascending = True
    assert rb.table().val_acc.is_monotonic_increasing
    rb.ascending = False
    # a run with figures: its PNGs in one grid, its report linked relative to the working folder
    run_id = next(r.id for r in runs.itertuples() if any(Path(r.run_dir).glob('figures/*.png')))
    n_png = len(list(Path(reference_store.get(run_id)['run_dir']).glob('figures/*.png')))
    assert sum(len(ax.images) > 0 for ax in rb.run_figure(run_id).axes) == n_png
    html = rb.run_html(run_id)
    link = html.split('href="')[1].split('"')[0]
    assert Path(os.getcwd(), link).resolve() == Path(reference_store.get(run_id)['report']).resolve()
    bare = tmp_path / 'bare' / run_id                         # the same run without its figures
    shutil.copytree(Path(reference_store.get(run_id)['run_dir']), bare, ignore=shutil.ignore_patterns('figures'))
    other = Store(tmp_path / 'bare.sqlite'); import_runs(tmp_path / 'bare', other)
    with pytest.raises(FileNotFoundError, match='no figures'):
        ResultsBrowser(other, 'centroid_clustering', 'val_acc').run_figure(run_id)
    with pytest.raises(ValueError, match="not a numeric metric of centroid_clustering"):
        rb.select(sort='banana')


def test_results_browser_widget_follows_its_dropdowns(reference_store):
    rb = ResultsBrowser(reference_store)
    box = rb.widget()
    (exp, sort, order), grouped, _, run, _ = box.children[0].children, *box.children[1:]
    assert list(exp.options) == rb.experiments() and 'dreamcomp' in exp.options
    exp.value = 'dreamcomp'
    assert rb.experiment == 'dreamcomp' and list(sort.options) == rb.metrics('dreamcomp') and sort.value == 'test_acc'
    accs = reference_store.runs('dreamcomp').set_index('id').test_acc
    ids = [v for _, v in run.options]                           # best first (runs with equal accuracy in any order)
    assert sorted(ids) == sorted(accs.index) and list(accs[ids]) == sorted(accs, reverse=True)
    sort.value = 'seconds_per_epoch'
    assert rb.sort == 'seconds_per_epoch'
    order.value = True
    assert [v for _, v in run.options] == list(reference_store.runs('dreamcomp').sort_values('seconds_per_epoch').id)
    run.value = run.options[0][1]                                # opening a run draws it (no error, no browser)
    grouped.value = True
    assert rb.by_config and 'config' in rb.table().columns


def test_results_browser_groups_seeds_and_renders_the_dialog_as_markdown(tmp_path):
    st = Store(tmp_path / 'r.sqlite')
    for i, (k, seed, acc) in enumerate([(3, 0, 0.80), (3, 1, 0.82), (5, 0, 0.90), (5, 1, 0.94)]):
        d = tmp_path / f'run{i}'
        d.mkdir()
        (d / 'dialog.md').write_text('The net reaches **90%** with k neighbours.\n\n- one\n- two\n')
        st.add(id=f'r{i}', experiment='toy', params={'k': k, 'seed': seed}, status='ok', started=f'2026-01-01 00:00:0{i}',
               metrics={'acc': acc}, run_dir=str(d), notebook_hash='nb')
    rb = ResultsBrowser(st, 'toy', 'acc', by_config=True)
    t = rb.table()
    assert t.n.tolist() == [2, 2] and t.k.tolist() == [5, 3] and t.acc.tolist() == pytest.approx([0.92, 0.81])
    assert t['acc.std'].tolist() == pytest.approx([np.std([0.9, 0.94], ddof=1), np.std([0.8, 0.82], ddof=1)])
    ax = rb.figure().axes[0]
    assert sorted(b.get_width() for b in ax.patches) == pytest.approx([0.81, 0.92]) and ax.lines   # means, with error bars
    html = rb.run_html('r2')
    assert '<strong>90%</strong>' in html and '<li>one</li>' in html and '**' not in html and '<pre' not in html


def test_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match='no runs yet'):
        ResultsBrowser(Store(tmp_path / 'empty.sqlite'))


def test_live_plot_leaves_one_static_figure_outside_jupyterlab():
    class Model:
        history_ = []
    m, shown = Model(), []
    import IPython.display
    real = IPython.display.display
    IPython.display.display = lambda obj, *a, **k: shown.append(obj)
    try:
        with LivePlot('loss') as live:
            for e in range(3):
                m.history_.append({'epoch': e + 1, 'loss': 1.0 / (e + 1)})
                live(m, e)
                assert shown == []                               # nothing drawn while training
        with LivePlot('loss', final=False) as quiet:
            quiet(m, 0)
    finally:
        IPython.display.display = real
    assert len(shown) == 1 and list(shown[0].axes[0].lines[0].get_ydata()) == [1.0, 0.5, 1 / 3]
    assert live.output is None and quiet.output is None          # no widget was made


def test_recorded_runs_have_static_figures_and_no_widgets(lab):
    r = reprlab('run', 'centroid_clustering', '-p', 'dataset', 'digits', '-p', 'layers', '32', '-p', 'epochs', '2',
                '-p', 'baselines', 'false', '--json', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    nb = json.loads(Path(out['run_dir'], 'report.ipynb').read_text())
    mimes = [k for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) for k in o.get('data', {})]
    assert 'image/png' in mimes and WIDGET_MIME not in mimes
