"""Temperature measurement and ActCooLR against direct computations; the actcoolr experiment and its sweep files."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import subprocess
import sys
import torch
from conftest import ROOT, reprlab
from scipy.special import erfinv
from torch import nn

from reprlab.experiment import notebook_metrics, notebook_params, notebook_presets
from reprlab.sweep import load_spec, sweep_points
from reprlab.temperature import ActCooLR, TemperatureMeter, erf_model, fit_measured, fit_range, lr_range, temperature


def test_p_same_matches_a_direct_numpy_computation():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    W = [p.detach().numpy().astype(np.float64).copy() for p in net.parameters()]
    meter = TemperatureMeter(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    with meter.recording(): loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward()
    grads = [p.grad.numpy().astype(np.float64) for p in net.parameters()]
    opt.step()
    p_same = meter.measure(x)

    def patterns(params):
        w1, b1, w2, b2 = params[:4]
        h1 = x.numpy() @ w1.T + b1
        h2 = np.maximum(h1, 0) @ w2.T + b2
        return h1 > 0, h2 > 0
    before, after = patterns(W), patterns([w - 0.5 * g for w, g in zip(W, grads)])
    expected = {'1': (before[0] == after[0]).all(1).mean(), '3': (before[1] == after[1]).all(1).mean()}
    assert p_same == pytest.approx(expected, abs=1e-12)
    assert 0 < expected['1'] < 1                                # the step did flip some patterns
    assert meter.temperatures(p_same)['1'] == pytest.approx(-math.log2(expected['1']))


def _dropout_bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 16), nn.ReLU(),
                         nn.Dropout(0.3), nn.Linear(16, 3))


def test_measuring_does_not_change_training():
    X, y = torch.randn(96, 1, 8, 8), torch.randint(0, 3, (96,))
    states = []
    for every in (0, 1, 3):
        net = _dropout_bn_net()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        torch.manual_seed(123)                                   # dropout draws from the global generator
        h = fit_measured(net, X, y, opt, epochs=3, batch_size=16, every=every, progress=False)
        states.append((net.state_dict(), torch.get_rng_state()))
        assert (h['p_change'].notna().sum() if 'p_change' in h else 0) == (0 if every == 0 else len(range(0, 18, every)))
    for sd, rng in states[1:]:
        assert all(torch.equal(states[0][0][k], v) for k, v in sd.items())       # weights and batch-norm statistics
        assert torch.equal(states[0][1], rng)                                    # and the random state


def test_lr_range_restores_state_and_rises():
    net = _dropout_bn_net()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    df = lr_range(net, nn.functional.cross_entropy, x, y)
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())
    assert len(df) == 25 and df.index[0] == pytest.approx(1e-4) and df.index[-1] == pytest.approx(1e2)
    assert df['mean'].iloc[:5].mean() < df['mean'].iloc[-5:].mean()


class ErfMeter:
    "Stands in for TemperatureMeter: each layer's P_change is exactly the erf model at the lr of the step just taken."
    def __init__(self, opt, layers):                    # layers: name -> (mu, sigma)
        self.opt, self.layers, self.armed = opt, layers, 0

    def arm(self): self.armed += 1

    def measure(self):
        assert self.armed, 'measured without arming'
        self.armed = 0
        lr = self.opt.param_groups[0]['lr']
        return {n: 1 - float(erf_model(lr, mu, s)) for n, (mu, s) in self.layers.items()}

    def temperatures(self, p_same): return {n: -math.log2(p) for n, p in p_same.items()}


def _simulate(lr0, steps, layers, **kw):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr0)
    sched = ActCooLR(opt, meter=ErfMeter(opt, layers), **kw)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
    return np.array(lrs), sched


def _reference(lr0, steps, layers, total_steps, sigma, t0, gamma, every, warmup, variant, mapping, average, meta_lr):
    "The controller written out in NumPy from its description, one step at a time."
    base = 2.0 if mapping == 'exp2' else np.e
    to_p, to_T = (lambda T: 1 - base ** -T), (lambda p: -np.log(1 - p) / np.log(base))
    z = lambda p: np.sqrt(2) * erfinv(2 * np.clip(p, 1e-6, 1 - 1e-6) - 1)
    lr, out, warm, held, T0 = lr0, [], [], None, t0
    for k in range(steps):
        out.append(lr)
        measured = k < warmup or (k - warmup + 1) % every == 0
        if measured:
            T_layers = [-np.log2(1 - erf_model(lr, mu, s)) for mu, s in layers.values()]
            x = np.mean(T_layers) if average == 'temperature' else np.mean([to_p(T) for T in T_layers])
            if k < warmup: warm.append(x); x = np.mean(warm)
            p_now = to_p(x) if average == 'temperature' else x
            if k == warmup - 1 and T0 is None: T0 = to_T(p_now)
        if k < warmup - 1: continue
        if measured:
            p_t = to_p(T0 * (1 - min(k / total_steps, 1)) ** gamma)
            lr_model = lr * np.exp(sigma * (z(p_t) - z(p_now)))
            if variant == 'static': held = lr_model
            else: lr = float(np.clip(lr - meta_lr * (p_now - p_t), min(lr, lr_model), max(lr, lr_model))); continue
        if variant == 'static': lr = lr + (held - lr) / every
    return np.array(out)


TWO_LAYERS = {'low': (math.log(0.5), 1.2), 'high': (math.log(0.08), 0.9)}


@pytest.mark.parametrize('variant,mapping,average,t0', [
    ('static', 'exp', 'temperature', 1.25),        # the study's combination
    ('static', 'exp', 'temperature', None),        # T0 from the warm-up
    ('static', 'exp2', 'probability', None),       # the lab's
    ('dynamic', 'exp', 'temperature', 1.25),
    ('dynamic', 'exp2', 'probability', 2.0)])
def test_controller_follows_the_study_rule_step_by_step(variant, mapping, average, t0):
    kw = dict(total_steps=120, sigma=1.4, t0=t0, gamma=1.86, every=10, warmup=7, variant=variant, mapping=mapping,
              average=average, meta_lr=0.3)
    lrs, sched = _simulate(0.05, 150, TWO_LAYERS, **kw)            # 150 > 120 steps: past the end, s stays 1
    expected = _reference(0.05, 150, TWO_LAYERS, **kw)
    np.testing.assert_allclose(lrs, expected, rtol=1e-10)
    assert np.all(lrs[:7] == 0.05) and lrs[7] != 0.05                # the warm-up holds the initial lr
    assert sched.t0_ == pytest.approx(t0 if t0 else sched.t0_) and sched.t0_ > 0


def test_the_held_target_is_approached_geometrically():
    # one layer, exact erf model (mu = ln 0.2, sigma = 1.5), T0 = 1 bit: P_target = 0.5 at lr 0.2, reached from lr 0.05
    lrs, _ = _simulate(0.05, 30, {'x': (math.log(0.2), 1.5)}, total_steps=10**12, sigma=1.5, t0=1.0, every=10, warmup=1)
    np.testing.assert_allclose(lrs, 0.2 - 0.15 * 0.9 ** np.arange(30), rtol=1e-9)
    assert lrs[10] == pytest.approx(0.2 - 0.15 * 0.9 ** 10)          # 0.152 after ten steps, not round 1's 2.7


@pytest.mark.parametrize('variant', ['static', 'dynamic'])
@pytest.mark.parametrize('every', [1, 10])
@pytest.mark.parametrize('meta_lr', [0.05, 50.0])
def test_no_variant_overshoots_an_exact_model(variant, every, meta_lr):
    mu, sigma = math.log(0.2), 1.5
    for T0 in (0.2, 1.0, 3.0):
        lr_star = math.exp(mu + sigma * math.sqrt(2) * erfinv(2 * (1 - 2 ** -T0) - 1))   # where the layer is at T0
        for lr0 in (lr_star / 300, lr_star / 3, lr_star * 3, lr_star * 300):
            lrs, _ = _simulate(lr0, 150, {'x': (mu, sigma)}, total_steps=10**12, sigma=sigma, t0=T0, every=every,
                               warmup=1, variant=variant, meta_lr=meta_lr, lr_max=1e6)
            side = np.sign(lr0 - lr_star)
            assert np.all((lrs / lr_star - 1) * side >= -1e-8), (T0, lr0, lrs[(lrs / lr_star - 1) * side < -1e-8][:3])
            if variant == 'static': assert abs(lrs[-1] / lr_star - 1) < 1e-3, (T0, lr0, lrs[-1], lr_star)


def test_the_study_mapping_steers_to_the_same_temperature():
    # 'exp' feeds the erf model 1 - e^-T instead of the P_change it was fitted to: the step is no longer exact (it can
    # pass the target, see the notebook), but the fixed point, where the layer is at T0 bits, is the same
    mu, sigma = math.log(0.2), 1.5
    for T0 in (0.5, 2.0):
        lr_star = math.exp(mu + sigma * math.sqrt(2) * erfinv(2 * (1 - 2 ** -T0) - 1))
        for lr0 in (lr_star / 30, lr_star * 30):
            lrs, sched = _simulate(lr0, 400, {'x': (mu, sigma)}, total_steps=10**12, sigma=sigma, t0=T0, every=10, warmup=1,
                                   mapping='exp', average='temperature')
            assert abs(lrs[-1] / lr_star - 1) < 1e-3 and abs(sched.temperature_now_ - T0) < 1e-3, (T0, lr0, lrs[-1], lr_star)


def test_actcoolr_trains_in_a_plain_loop_and_resumes_from_a_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(320, 1, 8, 8, generator=g), torch.randint(0, 3, (320,), generator=g)

    def build():
        net = _dropout_bn_net()
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        return net, opt, ActCooLR(opt, total_steps=40, model=net, sigma=1.2, t0=1.0, every=4, warmup=3, mapping='exp',
                                  average='temperature')

    def train(checkpoint_at=None):
        net, opt, sched = build()
        torch.manual_seed(5)
        lrs, losses = [], []
        for k in range(40):
            i = (k * 16) % 320
            loss = nn.functional.cross_entropy(net(X[i:i + 16]), y[i:i + 16])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            lrs.append(sched.get_last_lr()[0]); losses.append(loss.item())
            if k == checkpoint_at:
                torch.save({'model': net.state_dict(), 'opt': opt.state_dict(), 'sched': sched.state_dict(),
                            'rng': torch.get_rng_state()}, tmp_path / 'ck.pt')
                sched.close()
                ck = torch.load(tmp_path / 'ck.pt', weights_only=True)
                net, opt, sched = build()
                net.load_state_dict(ck['model']); opt.load_state_dict(ck['opt']); sched.load_state_dict(ck['sched'])
                torch.set_rng_state(ck['rng'])
        return lrs, losses, sched, opt

    lrs, losses, sched, opt = train()
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert sched.get_last_lr() == [g['lr'] for g in opt.param_groups] and len(set(lrs)) > 5
    assert sched.last_epoch == 40 and all(math.isfinite(v) for v in losses)
    resumed, resumed_losses, _, _ = train(checkpoint_at=17)
    assert resumed == lrs and resumed_losses == losses                 # bit for bit, dropout included


def test_actcoolr_refuses_what_it_cannot_do():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match='too hot'):
        sched = ActCooLR(opt, 10, meter=ErfMeter(opt, {'x': (math.log(0.2), 1.5)}), sigma=1.5, t0=20.0, warmup=1)
        opt.step(); sched.step()
    for bad, match in ((dict(variant='fast'), "variant='fast'"), (dict(mapping='e'), "mapping='e'"),
                       (dict(average='median'), "average='median'"), (dict(t0=float('nan')), 't0=nan'),
                       (dict(every=0), 'every=0')):
        with pytest.raises(ValueError, match=match):
            ActCooLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 10, model=_dropout_bn_net(), **bad)
    net = _dropout_bn_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = ActCooLR(opt, 10, model=net, warmup=2)
    opt.step()                                                         # no training forward pass was recorded
    with pytest.raises(RuntimeError, match='nothing recorded'):
        sched.step()
    with pytest.raises(ValueError, match='the warm-up must be shorter than the run'):
        ActCooLR(opt, 10, model=net, warmup=10)
    with pytest.raises(ValueError, match='no nn.ReLU modules'):
        TemperatureMeter(nn.Linear(3, 2))
    with pytest.raises(ValueError, match='P_change stays within'):
        fit_range(pd.DataFrame({'mean': np.full(25, 0.02)}, index=np.logspace(-4, 2, 25)))
    assert temperature(0.0, 64) == 6.0


def test_actcoolr_experiment_runs(lab, busy_machine):
    # beside two CPU-bound processes: nothing in the experiment depends on the machine being quiet
    r = reprlab('run', 'actcoolr', '-p', 'epochs', '2', '-p', 'n_train', '320', '-p', 'every', '2', '-p', 'warmup', '3',
                '-p', 'width', '8', '--json', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    m = out['metrics']
    for name in ('constant', 'step', 'onecycle', 'actcoolr'):
        assert 0 <= m[f'test_acc_{name}'] <= 1 and 0 <= m[f'val_acc_{name}'] <= 1
    assert m['sigma'] > 0 and m['actcoolr_t0'] > 0 and m['hopes_total'] == 4
    assert m['measure_overhead'] > 0                    # a measured ratio, reported only: its size depends on the machine's load
    # the best other schedule is the one best on validation (the first of equals, in schedule order); the gap is on test
    best = max(('constant', 'step', 'onecycle'), key=lambda n: m[f'val_acc_{n}'])
    assert m['actcoolr_gap'] == pytest.approx(100 * (m['test_acc_actcoolr'] - m[f'test_acc_{best}']))
    dialog = (lab / 'reports' / 'actcoolr' / out['run_id'] / 'dialog.md').read_text()
    assert (f"on test from the best other schedule on validation, {best} (validation {m[f'val_acc_{best}']:.2%}, "
            f"test {m[f'test_acc_{best}']:.2%})") in dialog, dialog
    figs = {p.name for p in (lab / 'reports' / 'actcoolr' / out['run_id'] / 'figures').iterdir()}
    assert figs == {'range_analysis.png', 'temperature_heatmaps.png', 'training_curves.png'}
    assert all(b.poll() is None for b in busy_machine)  # the two were running the whole time


def test_actcoolr_divergence_is_reported_as_such(lab):
    r = reprlab('run', 'actcoolr', '-p', 'lr', '1e4', '-p', 'schedule', 'constant', '-p', 'model', 'mlp', '-p', 'epochs', '2',
                '-p', 'n_train', '300', '--json', timeout=600)
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert 'diverged: loss is nan at epoch 0; lower lr' in text and 'math domain error' not in text, text[-2000:]


@pytest.mark.parametrize('file,schedule,n_points', [('actcoolr.sweep.yaml', 'actcoolr', 12),
                                                     ('actcoolr_onecycle.sweep.yaml', 'onecycle', 8)])
def test_tuning_sweeps_search_on_validation(file, schedule, n_points):
    spec = load_spec(ROOT / 'nbs' / 'experiments' / file)
    points = sweep_points(spec, notebook_params(ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb'))
    assert spec.experiment == 'actcoolr' and spec.metric == f'val_acc_{schedule}' and not spec.ascending
    assert len(points) == 2 * n_points and {p['schedule'] for p in points} == {schedule}
    assert all(p['dataset'] == 'mnist' and p['n_val'] > 0 for p in points)
    # each drawn point over seeds 0 and 1: the two replicates differ in their seed alone
    configs = {}
    for p in points: configs.setdefault(json.dumps({k: v for k, v in p.items() if k != 'seed'}, sort_keys=True), []).append(p['seed'])
    assert len(configs) == n_points and all(sorted(s) == [0, 1] for s in configs.values())


def test_actcoolr_declares_the_study_preset_and_its_metrics():
    nb = ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb'
    study = notebook_presets(nb)['study']                 # every value checked against its parameter's constraint
    assert study['mapping'] == 'exp' and study['average'] == 'temperature' and study['momentum'] == 0
    assert study['variant'] == 'static' and study['model'] == 'convnet4'
    # only what the study's own convnet run used (its Table 3 and data section), none of the lab's searched values or budget
    assert {k: study[k] for k in ('dataset', 't0', 'gamma', 'epochs', 'batch_size')} == dict(
        dataset='fashion_mnist', t0=1.25, gamma=1.86, epochs=200, batch_size=64)
    assert not {'max_lr', 'n_train', 'n_val'} & set(study)
    metrics = notebook_metrics(nb)
    assert [m.name for m in metrics.values() if m.primary] == ['test_acc_actcoolr']
    assert all(p.constraint for p in notebook_params(nb).values() if p.type in ('int', 'float'))


def _best_snippet(make: str) -> str:
    "The Python program of the Makefile's BEST: the first row of `reprlab results --by-config --format json` as -p NAME VALUE."
    line = make.split('BEST = ')[1].split("-c \\\n")[1].split('\n')[0].strip()
    return line[1:line.rindex("'")]


def test_the_reference_run_passes_the_searched_values_so_its_run_info_lists_them():
    "make reference-actcoolr: the two tuning sweeps first, then preset study with their best points and the budget explicit, over 3 seeds."
    from reprlab.report import study_differences
    make = (ROOT / 'Makefile').read_text()
    budget = make.split('ACTCOOLR_BUDGET := ')[1].split('\n')[0].split()
    assert dict(zip(budget[1::3], budget[2::3])) == dict(dataset='mnist', epochs='3', batch_size='128', n_train='10000', n_val='5000')
    recipe = make.split('\nreference-actcoolr:\n')[1].split('\nreference-')[0]
    assert recipe.index('actcoolr.sweep.yaml') < recipe.index('actcoolr_onecycle.sweep.yaml') < recipe.index('BEST,') < recipe.index('-p preset study')
    assert '$(call BEST,actcoolr-t0-gamma,val_acc_actcoolr,t0 gamma)' in recipe
    assert '$(call BEST,actcoolr-onecycle-max-lr,val_acc_onecycle,max_lr)' in recipe
    assert recipe.count('--workers 1') == 4
    # seeds are replicated by the sweep (one run per seed, their spread from `results --by-config`), not inside the notebook;
    # the study's target curve runs last, so it is the newest group for the claims that ask any run
    assert recipe.index('-p target onecycle') < recipe.index(
        'reprlab sweep actcoolr --seeds 3 --workers 1 --no-progress -p preset study -p schedule all $(ACTCOOLR_BUDGET) $$schedule $$lr')
    assert 'seeds' not in notebook_params(ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb')
    # BEST reads the best configuration's values, under their own name or 'param.NAME' where a metric shares it
    # the first row whose seeds all ran: a point with a failed seed (a target too hot on that seed) is not eligible
    assert recipe.count('\t-$(REFENV) $(BIN)/reprlab sweep actcoolr --config') == 2      # a failed search point stops nothing
    rows = [{'t0': 4.47, 'param.gamma': 2.4, 'max_lr': 3.0, 'val_acc_actcoolr': 0.95, 'failed': 1},
            {'t0': 3.3612, 'param.gamma': 1.1149, 'max_lr': 1.39665, 'val_acc_actcoolr': 0.94, 'failed': 0},
            {'t0': 1.0, 'param.gamma': 2.0, 'max_lr': 0.2}]
    out = subprocess.run([sys.executable, '-c', _best_snippet(make), 't0', 'gamma', 'max_lr'], input=json.dumps(rows),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ['-p', 't0', '3.36', '-p', 'gamma', '1.11', '-p', 'max_lr', '1.4']
    params = {**notebook_presets(ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb')['study'], 'dataset': 'mnist', 't0': 3.36, 'gamma': 1.11,
              'epochs': 3, 'batch_size': 128}
    assert [d[0] for d in study_differences(params, notebook_presets(ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb')['study'])] == [
        'dataset', 'epochs', 'batch_size', 't0', 'gamma']


def test_the_experiment_trains_through_the_library():
    "actcoolr.ipynb calls temperature.train_schedule: no training loop, no loop over seeds, no optimizer or scheduler of its own."
    nb = json.loads((ROOT / 'nbs' / 'experiments' / 'actcoolr.ipynb').read_text())
    code = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
    assert 'train_schedule(' in code and 'half_times(' in code and 'plot_training_curves(' in code
    for loop in ('fit_measured(', 'backward(', 'optim.SGD', 'lr_scheduler', 'range(seed', 'def half_time', 'new_figure(', '.subplots('):
        assert loop not in code, loop


def test_train_schedule_is_fit_measured_under_its_scheduler():
    "train_schedule('step') is fit_measured with SGD and the rate / 10 at half and three quarters of the run; half_time against a loop."
    from reprlab.temperature import Splits, half_time, make_model, train_schedule
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    splits = Splits(X, y, X[:16], y[:16], X[16:32], y[16:32])
    r = train_schedule('step', make_model('convnet4', X, 3, width=4, seed=3), splits, epochs=2, batch_size=16, lr=0.1, every=2, seed=1)
    net = make_model('convnet4', X, 3, width=4, seed=3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    h = fit_measured(net, X, y, opt, 2, 16, torch.optim.lr_scheduler.MultiStepLR(opt, [4, 6], 0.1), every=2, seed=1, progress=False)
    assert r.history[['step', 'lr', 'loss', 'p_change']].equals(h[['step', 'lr', 'loss', 'p_change']])
    assert list(r.history.lr) == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert r.val_acc == float((net.eval()(X[:16]).argmax(1) == y[:16]).float().mean()) and r.warmup is None
    T = pd.Series([1.0, 3, 4, 3.5, 2, 1, 0.5, 0.2, 0.1], index=range(0, 90, 10))
    sm = [np.mean(T.to_numpy()[max(0, i - 2):i + 1]) for i in range(len(T))]     # running mean over 3
    peak = int(np.argmax(sm))
    assert half_time(T, window=3) == next(10 * i for i in range(peak, len(T)) if sm[i] < max(sm) / 2)
    assert half_time(pd.Series([1.0, 2, 3]), window=3) is None


def _actcoolr(*params, expect=0):
    r = reprlab('run', 'actcoolr', *[x for kv in params for x in ('-p', *kv)], '--no-progress', '--json', timeout=600)
    assert r.returncode == expect, r.stderr[-3000:] + r.stdout[-2000:]
    return json.loads(r.stdout)


@pytest.mark.parametrize('schedule', ['constant', 'step'])
def test_a_run_of_one_schedule_checks_the_hopes_about_it_and_names_the_others(lab, schedule):
    "Every declared schedule runs: hopes about schedules it did not train are named as not checked, not left to crash."
    out = _actcoolr(('schedule', schedule), ('model', 'mlp'), ('epochs', '2'), ('n_train', '300'))
    assert out['status'] == 'ok' and out['metrics']['hopes_total'] == 1, out.get('error')
    run_dir = lab / 'reports' / 'actcoolr' / out['run_id']
    hopes = json.loads((run_dir / 'hopes.json').read_text())
    assert [h['key'] for h in hopes] == ['bottom_up'] and hopes[0]['detail'].startswith(f'under {schedule}, half-peak steps ')
    dialog = (run_dir / 'dialog.md').read_text()
    assert '**Not checked in this run** (3): Under 1-cycle, the mean temperature falls roughly linearly' in dialog, dialog
    assert "ActCooLR tracks its target" in dialog.split('**Not checked in this run**')[1]


def test_target_onecycle_trains_1cycle_first_and_follows_its_measured_temperature(lab):
    "target onecycle: a run of actcoolr alone trains 1-cycle on the same seed and gives ActCooLR its fitted temperature curve."
    out = _actcoolr(('schedule', 'actcoolr'), ('target', 'onecycle'), ('model', 'mlp'), ('epochs', '2'), ('n_train', '300'),
                    ('every', '2'), ('warmup', '3'))
    m = out['metrics']
    assert out['status'] == 'ok' and {'test_acc_onecycle', 'test_acc_actcoolr', 'actcoolr_gap'} <= set(m), out.get('error')
    dialog = (lab / 'reports' / 'actcoolr' / out['run_id'] / 'dialog.md').read_text()
    assert f"following the temperature 1-cycle measured on the same seed (its mean in 10 bins of progress, from {m['actcoolr_t0']:.2f} bits)" in dialog
    assert 'best other schedule on validation, onecycle' in dialog


def test_a_run_shorter_than_the_warmup_warms_up_for_half_of_it(lab):
    "warmup = 10 with a 5-step run: ActCooLR warms up for 2 steps and the dialog says so."
    out = _actcoolr(('schedule', 'actcoolr'), ('model', 'mlp'), ('epochs', '1'), ('n_train', '300'))
    assert out['status'] == 'ok' and out['metrics']['hopes_total'] == 2, out.get('error')
    dialog = (lab / 'reports' / 'actcoolr' / out['run_id'] / 'dialog.md').read_text()
    assert 'After its 2-step warm-up (shortened from `warmup` = 10: the run has only 5 steps)' in dialog


def test_a_one_step_run_of_actcoolr_fails_saying_what_to_change(lab):
    out = _actcoolr(('schedule', 'actcoolr'), ('model', 'mlp'), ('epochs', '1'), ('n_train', '30'), expect=1)
    assert out['error'] == ("ValueError: schedule actcoolr: the run has 1 optimizer step (epochs 1 x 1 batches of 64 from 30 samples), "
                            "ActCooLR needs at least 2; raise epochs or n_train, or lower batch_size"), out['error']
