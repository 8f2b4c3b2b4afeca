"""Inputs a user (or an attacker) may give: plain papermill's explicit values, hostile YAML, long or unsafe names, bad counts."""
import json
import re
import resource
import subprocess

import pytest
from conftest import BIN, ROOT, reprlab
from reprlab.experiment import new_experiment_notebook

LIMIT = 1 << 30   # address space allowed to a refused command: an alias bomb expanded would need far more


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def refused(*args):
    "Run reprlab under a memory cap; assert it exits 2 with one line on stderr; return that line."
    r = reprlab(*args, preexec_fn=_capped, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr and len(lines[0]) < 400, lines[0][:500]
    return lines[0]


def _bomb(indent=''):
    "The 'billion laughs': nine levels of nine aliases each (9**9 strings once expanded), in a few hundred bytes."
    lv = 'abcdefghi'
    return (f'{indent}- &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' +
            ''.join(f"{indent}- &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip(lv, lv[1:])))


@pytest.fixture
def toy(lab_experiments):
    "A tiny experiment (no data, no training) whose kernel logs the float it was given."
    new_experiment_notebook(lab_experiments / 'toy.ipynb', 'lr: float = 0.1  # step [> 0]\nseed: int = 0  # seed [min 0]',
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\nlog_metrics(lr_seen=lr)",
                            metrics={'lr_seen': 'the lr the kernel saw [-, higher, primary]'})
    return 'toy'


def test_plain_papermill_keeps_explicit_values_over_the_preset_and_records_the_commit(lab, tmp_path):
    "`papermill dreamcomp.ipynb OUT -p preset study -p epochs 1` runs 1 epoch (the study's 15 only where not given)."
    out = tmp_path / 'out.ipynb'
    r = subprocess.run([str(BIN / 'papermill'), str(ROOT / 'nbs/experiments/dreamcomp.ipynb'), str(out), '-p', 'preset', 'study',
                        '-p', 'epochs', '1', '-p', 'dataset', 'digits', '-p', 'n_train', '300',
                        '-p', 'target_acc', '0'], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    info = next(''.join(o['data']['text/markdown']) for c in json.loads(out.read_text())['cells'] for o in c.get('outputs', [])
                if 'Run info' in ''.join(o.get('data', {}).get('text/markdown', '')))
    assert '| epochs | 1 |' in info and '| batch_size | 100 |' in info, info     # explicit value kept; the study's batch applied
    assert 'explicit values kept over it: `epochs`' in info and '`epochs` = 1 (study: 15)' in info, info
    commit = re.search(r'\| commit \| `([0-9a-f]{10})`', info)
    assert commit, info                                                           # not 'unknown': papermill ran inside a checkout
    assert subprocess.run(['git', 'cat-file', '-e', f'{commit.group(1)}^{{commit}}'], cwd=ROOT).returncode == 0


@pytest.mark.parametrize('case, text, expected', [
    ('alias bomb', 'ks:\n' + _bomb('  '), 'anchors and aliases (&name, *name) are not accepted (line 2)'),
    ('1500 levels', 'ks: ' + '[' * 1500 + ']' * 1500 + '\n', 'nested deeper than 20 levels'),
    ('duplicate key', 'n_train: 100\nn_train: 5\n', "key 'n_train' is given twice (line 2)"),
    ('over 1 MB', 'metric: ' + 'a' * 1_100_000 + '\n', 'larger than 1,000,000 bytes'),
])
def test_hostile_params_file_gets_one_line_and_exit_2(lab, tmp_path, case, text, expected):
    f = tmp_path / 'p.yaml'
    f.write_text(text)
    line = refused('run', 'quickstart', '--params-file', f)
    assert line.startswith(f'reprlab run: {f}: ') and expected in line, line
    assert not (lab / 'reports').exists()


@pytest.mark.parametrize('case, text, expected', [
    ('alias bomb', 'experiment: quickstart\ngrid:\n  ks:\n' + _bomb('    '), 'anchors and aliases'),
    ('1500 levels', 'experiment: quickstart\ngrid: {ks: ' + '[' * 1500 + ']' * 1500 + '}\n', 'nested deeper than 20 levels'),
    ('duplicate key', 'experiment: quickstart\ngrid: {ks: ["1", "3"]}\ngrid: {metric: [cosine]}\n', "key 'grid' is given twice"),
])
def test_hostile_sweep_config_gets_one_line_and_exit_2(lab, tmp_path, case, text, expected):
    f = tmp_path / 'sweep.yaml'
    f.write_text(text)
    line = refused('sweep', '--config', f, '--no-progress')
    assert line.startswith(f'reprlab sweep: {f}: ') and expected in line, line
    assert not (lab / 'reports').exists()


def test_long_values_are_never_echoed_whole(lab, tmp_path):
    f = tmp_path / 'p.yaml'
    f.write_text('metric: ' + 'a' * 120_000 + '\n')
    for args in [('run', 'quickstart', '--params-file', f), ('run', 'quickstart', '-p', 'metric', 'b' * 120_000)]:
        r = reprlab(*args)
        assert r.returncode == 2 and len(r.stderr) < 3000, (r.returncode, len(r.stderr))
        assert "parameter 'metric' = 'aaaaaaaa" in r.stderr or "parameter 'metric' = 'bbbbbbbb" in r.stderr, r.stderr[:500]
        assert '… (120,000 characters): expected one of cosine, euclidean' in r.stderr, r.stderr[:500]
    line = refused('run', 'q' * 5000)                                   # an experiment name too long for a file name
    assert '(5,000 characters)' in line and 'at most 100' in line, line


def test_yaml_numeric_text_is_the_float_the_command_line_gives(toy, tmp_path):
    "YAML 1.1 reads `lr: 1e-3` as text; for a float parameter it is 0.001, exactly as `-p lr 1e-3`."
    f = tmp_path / 'p.yaml'
    f.write_text('lr: 1e-3\n')
    r = reprlab('run', toy, '--params-file', f, '--json', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out['params']['lr'] == 0.001 and out['metrics']['lr_seen'] == 0.001, out


def test_sweep_name_too_long_or_unsafe_is_refused_before_any_point(toy, lab):
    for name, expected in [('x' * 5000, "sweep name 'xxxxxxxx"), ('a/b', "sweep name 'a/b'"), ('..', "sweep name '..'")]:
        line = refused('sweep', toy, '--grid', 'lr=0.1,0.2', '--name', name, '--no-progress', '--no-summary', '--workers', '1')
        assert expected in line and 'expected 1 to 100 letters' in line, line
        assert len(line) < 400 and not (lab / 'reports').exists()      # no point ran, no folder was made


def test_workers_zero_is_refused(toy, lab, tmp_path):
    line = refused('sweep', toy, '--grid', 'lr=0.1,0.2', '--workers', '0', '--no-progress', '--no-summary')
    assert 'workers must be >= 1' in line, line
    f = tmp_path / 'sweep.yaml'
    f.write_text(f'experiment: {toy}\ngrid: {{lr: [0.1, 0.2]}}\nworkers: 0\n')
    line = refused('sweep', '--config', f, '--no-progress', '--no-summary')
    assert line.startswith(f'reprlab sweep: {f}: workers 0: workers must be >= 1'), line
    assert not (lab / 'reports').exists()


def test_list_parameters_arrive_as_lists_from_the_cli_yaml_and_plain_papermill(lab_experiments, tmp_path):
    "`ks: list[int]`: `-p ks 2,5`, a YAML list and plain papermill's `-p ks 2,5` all give the kernel [2, 5]; a bad item gets one line."
    new_experiment_notebook(lab_experiments / 'lists.ipynb', 'ks: list[int] = [1]  # neighbours [min 1]\nseed: int = 0  # seed [min 0]',
                            "from reprlab.report import begin, log_metrics\nrun = begin(globals())\n"
                            "assert isinstance(ks, list), type(ks)\nlog_metrics(k_sum=sum(ks), k_count=len(ks))",
                            metrics={'k_sum': 'sum of ks [-, higher, primary]', 'k_count': 'items [count]'})
    r = reprlab('run', 'lists', '-p', 'ks', '2,5', '--json', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out['params']['ks'] == [2, 5] and out['metrics'] == {**out['metrics'], 'k_sum': 7, 'k_count': 2}, out
    (f := tmp_path / 'p.yaml').write_text('ks: [3, 4, 5]\n')
    r = reprlab('run', 'lists', '--params-file', f, '--json', '--no-progress')
    assert r.returncode == 0 and json.loads(r.stdout)['metrics']['k_sum'] == 12, r.stderr[-2000:]
    r = reprlab('run', 'lists', '-p', 'ks', '2,0')
    assert r.returncode == 2 and "parameter 'ks' = [2, 0]: item 0: expected >= 1" in r.stderr, r.stderr
    out = tmp_path / 'out.ipynb'
    r = subprocess.run([str(BIN / 'papermill'), str(lab_experiments / 'lists.ipynb'), str(out), '-p', 'ks', '2,5'],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '| ks | [2, 5] |' in out.read_text().replace('\\n', '\n'), 'plain papermill: the run info shows the list'
