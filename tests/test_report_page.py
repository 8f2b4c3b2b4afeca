"""What a researcher sees first in report.html: the headline above the intro, a title naming the run, hope verdicts
in words every font has, and no metrics dict echoed by a `log_metrics` call ending a cell."""
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, reprlab

from reprlab.experiment import new_experiment_notebook

EMOJI = re.compile('[\u2600-\u27bf\u2b00-\u2bff\U0001F000-\U0001FAFF]')   # symbols and dingbats that need an emoji font

BODY = '''from reprlab.report import begin, hope, log_metrics, say, show_hopes
run = begin(globals())
say("This run used the lab preset. Nothing else happened.")
say(f"The probe reaches **{0.8125:.2%}** accuracy over {seeds} seeds.", answer=True)
hope('accuracy above 80%', True, 'measured 81.25%')
hope('accuracy above 90%', False)
show_hopes();
log_metrics(acc=0.8125, acc_std=0.0123)'''


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    "One run of a generated experiment (study preset, 2 seeds); yields (run folder, report.html text)."
    d = tmp_path_factory.mktemp('report_page')
    exp = d / 'experiments'
    shutil.copytree(ROOT / 'nbs' / 'experiments', exp)
    new_experiment_notebook(exp / 'tiny.ipynb',
                            'preset: str = "lab"  # which settings {lab, study}\nlr: float = 0.01  # rate [> 0]\n'
                            'seeds: int = 3  # seeds averaged [min 1]\nseed: int = 0  # first seed [min 0]',
                            BODY, title='Tiny: does the probe work?',
                            summary='A generated experiment.\n\n**Date**: 2026-12-05\n\n**What**: the intro starts here.',
                            presets={'study': {'lr': 0.5}},
                            metrics={'acc': 'mean test accuracy over seeds [fraction, higher, primary]',
                                     'acc_std': 'standard deviation of the test accuracy over seeds [fraction]'})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('REPRLAB_REPORTS', str(d / 'reports')); mp.setenv('REPRLAB_STORE', str(d / 'results.sqlite'))
        mp.setenv('REPRLAB_EXPERIMENTS', str(exp)); mp.setenv('REPRLAB_DEVICE', 'cpu')
        r = reprlab('run', 'tiny', '-p', 'preset', 'study', '-p', 'seeds', '2', '--json')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return Path(out['run_dir']), Path(out['report']).read_text(encoding='utf-8')


def _text(html: str) -> str: return ' '.join(re.sub(r'<[^>]+>', ' ', html).split())


def test_headline_above_the_intro(page):
    "Primary metric with its spread over seeds, hopes met / not met, and the sentence marked as the answer, before the intro."
    _, html = page
    body = _text(html[html.index('<main>'):])
    head = re.search(r'Mean test accuracy over seeds \( acc , higher is better\): (.*?) Date', body)
    assert head, body[:600]
    assert body.index('Tiny: does the probe work?') < body.index('Mean test accuracy') < body.index('the intro starts here')
    assert '81.25% ± 1.23% (std over 2 seeds)' in head.group(1)
    assert 'Hopes : 1 met, 1 NOT met (of 2)' in head.group(1)
    assert 'Answer : The probe reaches 81.25% accuracy over 2 seeds.' in head.group(1)
    assert 'This run used the lab preset' not in head.group(1)        # the marked answer, not the first sentence


def test_title_names_the_experiment_and_what_sets_the_run_apart(page):
    "The preset and the parameters differing from the defaults under it; lr comes from the preset, so it is not named."
    _, html = page
    assert re.search(r'<title>(.*?)</title>', html).group(1) == 'tiny — preset=study, seeds=2'


def test_hope_marks_need_no_emoji_font(page):
    "Verdicts are words; nothing in the page or the notebook's outputs needs an emoji font."
    rdir, html = page
    assert '<td>met</td>' in html and '<td>NOT met</td>' in html
    assert not EMOJI.search(html), EMOJI.findall(html)
    nb = nbformat.read(rdir / 'report.ipynb', as_version=4)
    shown = json.dumps([c.get('outputs', []) for c in nb.cells], ensure_ascii=False)
    assert '**NOT met**: accuracy above 90%' in shown and not EMOJI.search(shown)


def test_log_metrics_ending_a_cell_prints_nothing(page):
    "`log_metrics(...)` as a cell's last line leaves no execute_result (no dict in the report)."
    rdir, html = page
    nb = nbformat.read(rdir / 'report.ipynb', as_version=4)
    last = [c for c in nb.cells if c.cell_type == 'code'][-1]
    assert last.source.rstrip().endswith('log_metrics(acc=0.8125, acc_std=0.0123)')
    assert not [o for o in last.outputs if o.output_type == 'execute_result'], last.outputs
    assert "'acc_std'" not in html and 'acc_std&#39;' not in html
    assert json.loads((rdir / 'metrics.json').read_text())['acc_std'] == 0.0123


def test_a_failed_run_is_headlined_by_its_error(lab_experiments):
    "The headline of a failed run starts with its error, above the intro; the metric logged before the failure is shown."
    new_experiment_notebook(lab_experiments / 'breaks.ipynb', 'x: int = 1  # a number [min 0]',
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\n"
                            "log_metrics(acc=0.5)\nraise RuntimeError(f'gave up at step {x}')",
                            summary='Always fails.\n\n**Date**: today', metrics={'acc': 'accuracy [fraction, higher, primary]'})
    r = reprlab('run', 'breaks', '-p', 'x', '4', '--json')
    assert r.returncode == 1, r.stderr
    html = Path(json.loads(r.stdout)['report']).read_text(encoding='utf-8')
    body = _text(html[html.index('<main>'):])
    assert body.index('Run failed : RuntimeError: gave up at step 4') < body.index('Accuracy ( acc , higher is better): 50.00%') < body.index('Date')
    assert re.search(r'<title>breaks — x=4</title>', html)
