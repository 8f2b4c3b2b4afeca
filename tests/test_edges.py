"""Every value a parameter allows runs: for every experiment in nbs/experiments, each declared choice of every `{...}`
str parameter and the smallest value allowed for its epoch-like parameters, at the smallest data sizes.

The runs are derived from the notebooks themselves: a choice added to a parameter line is run here without editing
this file. Choices are combined into as few runs as possible (run i sets every choice parameter to its i-th
non-default value), so an experiment costs as many runs as its longest list of choices, less one. Datasets that are
not shipped run on generated files in the official layouts (Fashion-MNIST's IDX files, CIFAR's extracted python
batches); MNIST, whose checksums are checked, needs the real files (REPRLAB_DATA) and its runs are skipped without
them."""
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, mnist_dir, reprlab

from reprlab.data import write_fake_cifar, write_idx
from reprlab.experiment import notebook_params, notebook_presets, parse_constraint

EXPERIMENTS = ROOT / 'nbs' / 'experiments'

# The smallest sizes each experiment runs at (every size a study preset would otherwise set is here too).
TINY = {
    'quickstart': dict(n_train=100, ks='1,3'),
    'actcoolr': dict(n_train=300, n_val=100, batch_size=64, width=4),
    'bench_competitive': dict(sizes='20x10', n_train=200),
    'bench_probes': dict(n_train=200, n_query=50, k=3, units=16, code_k=2, code_train=200, svm_compare=100),
    'bench_topo': dict(kx=4, ky=4, n_sample=50, n_batch=100, batch_size=10),
    'centroid_clustering': dict(layers='16,10', n_train=300, batch_size=100, baselines=False),   # test_centroid runs the baselines
    'dreamcomp': dict(kx=3, ky=3, n_train=200, batch_size=20),
    'kh_readout': dict(n_units=20, k=2, n_train=300, batch_size=20, readout_lrs='0.01', readout_scales='unit'),
    'sparse_contrastive': dict(units=16, top_k=2, compare_top_k='0,2', batch_size=64, hidden='16', width=4, knn_k=3,
                               svm_max_iter=20, val_size=100, n_train=300),
    'topo_sparse_dream': dict(kx=4, ky=4, samples_per_epoch=100, probe_train=10),
}
# Choices that only act together with another parameter's value, placed so that they meet: run i takes the i-th value
# (None leaves the default; a value may repeat, to keep a costly default out of runs). actcoolr's controller choices act
# when ActCooLR trains; FLO's u_head when the objective is flo.
ORDER = {
    'actcoolr': {'schedule': ['actcoolr', 'constant', 'step', 'onecycle'],
                 'model': ['mlp', 'resnet_small', 'mlp', 'mlp']},     # the default convnet4 is run by test_temperature
    'sparse_contrastive': {'objective': [None, 'infonce']},
}
# Parameters that count passes or repeats: each runs at the smallest value its constraint allows.
EPOCH_LIKE = {'epochs', 'code_epochs', 'readout_epochs', 'repeats', 'warmup', 'every'}


def _minimum(p):
    "The smallest value p's constraint allows ([min N] or [> N] for an int), or None."
    if p.type != 'int' or not p.constraint: return None
    c = parse_constraint(p.constraint, p.type, p.name)
    lows = [b if op == 'min' else int(b) + 1 for op, b in c.bounds if op in ('min', '>')]
    return int(max(lows)) if lows else None


def _runs(experiment):
    "Parameter sets that together run every non-default choice and the smallest epoch-like values."
    params = notebook_params(EXPERIMENTS / f'{experiment}.ipynb')
    choices = {}
    for p in params.values():
        if p.type in ('str', 'list[str]') and p.constraint.startswith('{'):   # a list parameter: each choice it lacks, alone
            others = [c for c in parse_constraint(p.constraint, p.type, p.name).choices
                      if (c not in p.default if isinstance(p.default, list) else c != p.default)]
            if others: choices[p.name] = others
    base = {**TINY[experiment], **{n: m for n, p in params.items() if n in EPOCH_LIKE and (m := _minimum(p)) is not None}}
    n_runs = max([len(v) for v in choices.values()] or [1])
    runs = [dict(base) for _ in range(n_runs)]
    for name, values in choices.items():
        if (placed := ORDER.get(experiment, {}).get(name)) is not None:
            assert {v for v in placed if v is not None} == set(values), f"{experiment}: ORDER[{name!r}] must hold {values}"
            order, values = zip(*[(i, v) for i, v in enumerate(placed) if v is not None])
        # datasets from the last run backwards: the run that may be skipped for want of MNIST carries the fewest other choices
        else: order = range(n_runs - 1, -1, -1) if name == 'dataset' else range(n_runs)
        for i, v in zip(order, values): runs[i][name] = v
    return runs


CASES = [(e, i, r) for e in sorted(TINY) for i, r in enumerate(_runs(e))]


def test_every_experiment_has_tiny_sizes_here():
    "A new experiment notebook must say here how it runs small, so that its choices are run below."
    found = {p.stem for p in EXPERIMENTS.glob('*.ipynb') if not p.stem.startswith('_')}
    assert found == set(TINY), f"experiments without tiny sizes in TINY: {sorted(found - set(TINY))}; gone: {sorted(set(TINY) - found)}"
    for e, values in TINY.items():
        unknown = set(values) - set(notebook_params(EXPERIMENTS / f'{e}.ipynb'))
        assert not unknown, f"{e}: TINY names unknown parameters {sorted(unknown)}"


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    "A data folder: the real MNIST when there is one, generated Fashion-MNIST and CIFAR files in the official layouts."
    d = tmp_path_factory.mktemp('data')
    if (m := mnist_dir()): (d / 'mnist').symlink_to(m)
    rng = np.random.default_rng(0)
    fashion = d / 'fashion_mnist'; fashion.mkdir()
    for prefix, n in (('train', 60000), ('t10k', 10000)):       # the counts are checked; uncompressed names carry no checksum
        imgs = np.zeros((n, 28, 28), np.uint8); imgs[:, 10:18, 10:18] = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        write_idx(fashion / f'{prefix}-images-idx3-ubyte', imgs)
        write_idx(fashion / f'{prefix}-labels-idx1-ubyte', rng.integers(0, 10, n).astype(np.uint8))
    for name, per_batch in (('cifar10', 1010), ('cifar100', 240)):   # cifar10: more than its default 5,000 validation images
        arch = write_fake_cifar(d / 'archives' / f'{name}.tar.gz', name, n_per_batch=per_batch)
        with tarfile.open(arch) as tar: tar.extractall(d / name, filter='data')   # an extracted folder: no archive checksum
    return d


@pytest.mark.parametrize('experiment, i, values', CASES, ids=[f'{e}-{i}' for e, i, _ in CASES])
def test_every_choice_runs(lab, monkeypatch, data_dir, experiment, i, values):
    nb = EXPERIMENTS / f'{experiment}.ipynb'
    preset = notebook_presets(nb).get(values.get('preset', 'lab'), {})
    if values.get('dataset', preset.get('dataset')) == 'mnist' and not mnist_dir():
        if 'dataset' in values: pytest.skip('needs real MNIST (REPRLAB_DATA/mnist)')
        values = {**values, 'dataset': notebook_params(nb)['dataset'].default}   # the preset's MNIST is absent: its other values run
    monkeypatch.setenv('REPRLAB_DATA', str(data_dir))
    monkeypatch.setenv('REPRLAB_CACHE', str(lab / 'cache'))
    r = reprlab('run', experiment, *[x for k, v in values.items() for x in ('-p', k, v)], '--no-progress', '--json', timeout=600)
    out = json.loads(r.stdout) if r.stdout.strip().startswith('{') else {}
    assert r.returncode == 0 and out.get('status') == 'ok', f"{experiment} {values}: {out.get('error') or r.stderr[-3000:]}"
