"""Every command shown in README.md and on the docs home page (nbs/index.ipynb) works as written.

The commands are read from the documents themselves (lines of ```sh blocks, and `inline code` that starts with a
program), so a command added to the docs is run here too, or this test fails until it is listed below:

- `reprlab` and `papermill` commands run for real in a temporary lab (REPRLAB_REPORTS / REPRLAB_STORE under
  tmp_path), quickstart runs with a smaller training split (`-p n_train 300`) where the command does not set it;
- the long ones (a study-preset run, the centroid sweeps of 16 and 20 points, the Dask one) run with `--dry-run`,
  which checks the experiment, every parameter and every point exactly as the command would and starts nothing;
- placeholders (RUN_ID, CONFIG, LAB_RUN, STUDY_RUN, PAGE, p.yaml, SWEEP.yaml, EXPERIMENT) get real values;
- make targets are checked with `make -n TARGET`; what else cannot run inside a test (a Dask cluster, a web server,
  the shell's own commands) is listed in NOT_RUN with the reason, and still checked (the option exists in the
  program's --help, the shell parses it).

The rest of the docs site (the library and experiment notebooks' prose, docs/pages) mostly names commands in passing
(`reprlab results`) or as templates (`reprlab results EXPERIMENT --sweep NAME`): each must name a subcommand and
options that exist, and a complete `reprlab run` / `sweep` there is checked with --dry-run.
"""
import json
from datetime import datetime
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, ROOT

PROGRAMS = ('reprlab', 'papermill', 'make', 'dask', 'python', 'pytest', 'nbdev-test', 'nbdev-export', 'source', 'export')
TINY = ['-p', 'n_train', '300']

# long commands: checked with --dry-run (every parameter and point validated, nothing started)
DRY_RUN = {
    'reprlab run centroid_clustering -p preset study': 'the study preset trains 100 epochs of a 1000-2048-256-4096 net',
    'reprlab run centroid_clustering -p epochs 30 --dry-run': 'already a dry run',
    'reprlab run centroid_clustering -p preset study --dry-run': 'already a dry run',
    'reprlab sweep quickstart --grid ks=3,5,9 --grid metric=cosine,euclidean -p n_train 500':
        'six more quickstart runs; the seeds sweep below runs one for real',
    'reprlab sweep centroid_clustering --random 20 --dist lr=loguniform:1e-4:1e-2 --dist batch_size=choice:100,340,1700':
        'twenty centroid_clustering runs',
    'reprlab sweep centroid_clustering --config nbs/experiments/centroid_clustering.sweep.yaml':
        'sixteen study-sized runs, about 25 minutes on 2 cores',
    'reprlab sweep centroid_clustering --config SWEEP.yaml --dask tcp://scheduler:8786':
        'no Dask scheduler here: the sweep file, the points and the address are checked, nothing is submitted',
}


def _help(*cmd): return subprocess.run([*cmd, '--help'], capture_output=True, text=True, timeout=120).stdout


def _make_n(target):
    r = subprocess.run(['make', '-n', target], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return r.returncode == 0 and not r.stderr.strip(), r.stderr


# Make targets are not run inside a test (they install, build the site, start JupyterLab, run for hours, or are this
# suite): every documented `make TARGET` is checked with `make -n TARGET` (the target exists and its recipe expands);
# placeholders in a target name are filled in here.
MAKE_PLACEHOLDERS = {'reference-EXPERIMENT': 'reference-quickstart'}

# other commands that cannot run inside a test: why, and the check that they at least parse
NOT_RUN = {
    'source .venv/bin/activate': ("the shell's own command", lambda: ((Path(sys.executable).parent / 'activate').is_file(), 'no activate script')),
    'python -m http.server -d _site': ('serves the site until stopped', lambda: ('-d DIRECTORY' in _help(sys.executable, '-m', 'http.server'), 'no -d')),
    'dask scheduler': ('starts a Dask scheduler that runs until stopped', lambda: ('Launch a Dask scheduler' in _help(str(BIN / 'dask'), 'scheduler'), 'no dask scheduler')),
    'dask worker tcp://HOST:8786 --nthreads 1': ('needs a Dask scheduler at HOST',
                                                  lambda: ('--nthreads' in _help(str(BIN / 'dask'), 'worker'), 'no --nthreads')),
    'nbdev-test --flags slow': ('runs every notebook with its slow cells', lambda: ('--flags' in _help(str(BIN / 'nbdev-test')), 'no --flags')),
    'pytest -n 2': ('this test suite itself, in two processes', lambda: ('--numprocesses' in _help(str(BIN / 'pytest')), 'no pytest-xdist')),
    'export REPRLAB_DATA=$(cd ../shared/data && pwd)': ("the shell's own command",
        lambda: (subprocess.run(['bash', '-n', '-c', 'export REPRLAB_DATA=$(cd ../shared/data && pwd)']).returncode == 0, 'bash -n failed')),
}


def doc_commands(text: str) -> list[str]:
    "Commands of a Markdown text: lines of sh code blocks (comments dropped) and inline code starting with a program."
    out = []
    for block in re.findall(r'```(?:sh|bash|shell|console)\n(.*?)```', text, re.S):
        for line in block.splitlines():
            cmd = '' if line.lstrip().startswith('#') else line.split(' #')[0]
            if cmd.strip(): out.append(' '.join(cmd.split()))
    prose = re.sub(r'```.*?```', '', text, flags=re.S)
    for span in re.findall(r'(?<!`)`([^`]+)`(?!`)', prose):
        span = ' '.join(span.split())
        if span.split(' ')[0] in PROGRAMS and ' ' in span: out.append(span)
    return out


def documented() -> dict[str, list[str]]:
    "Every command of README.md and of the docs home page, with the documents showing it."
    nb = json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())
    docs = {'README.md': (ROOT / 'README.md').read_text(),
            'nbs/index.ipynb': '\n\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')}
    out: dict[str, list[str]] = {}
    for name, text in docs.items():
        for c in doc_commands(text): out.setdefault(c, []).append(name)
    return out


def test_the_docs_show_commands():
    "The extraction finds the tour's commands (a guard against a parser that silently finds nothing)."
    cmds = documented()
    assert 'reprlab list' in cmds and 'reprlab results quickstart --sort knn_test_acc' in cmds
    assert 'papermill nbs/experiments/quickstart.ipynb out.ipynb -p n_train 500' in cmds
    assert len([c for c in cmds if c.startswith('reprlab ')]) >= 15, sorted(cmds)


def test_every_command_is_run_or_listed():
    "A documented command is a reprlab or papermill command (run below) or listed in NOT_RUN; the lists hold no stale entries."
    cmds = documented()
    unknown = [c for c in cmds if c.split(' ')[0] not in ('reprlab', 'papermill', 'make') and c not in NOT_RUN]
    assert not unknown, f'documented commands neither run nor listed in NOT_RUN: {unknown}'
    stale = [c for c in [*NOT_RUN, *DRY_RUN] if c not in cmds]
    assert not stale, f'listed but no longer documented: {stale}'


def test_make_targets_exist():
    "Every documented `make TARGET` is a target of the Makefile whose recipe expands (`make -n`)."
    targets = [c.split(' ')[1] for c in documented() if c.startswith('make ')]
    assert {'demo', 'test', 'reference'} <= set(targets), targets
    for t in targets:
        ok, why = _make_n(MAKE_PLACEHOLDERS.get(t, t))
        assert ok, f'make -n {t}: {why}'


@pytest.mark.parametrize('cmd', sorted(NOT_RUN))
def test_commands_that_cannot_run_here_parse(cmd):
    ok, why = NOT_RUN[cmd][1]()
    assert ok, f'{cmd!r}: {why}'


def _run(argv, timeout=600):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_reprlab_and_papermill_commands_run(lab, tmp_path):
    "Producers first (runs, sweeps, papermill), then the commands reading their results, placeholders filled in."
    cmds = [c for c in documented() if c.split(' ')[0] in ('reprlab', 'papermill')]
    (tmp_path / 'p.yaml').write_text('n_train: 300\nks: "1,3,5"\n')
    subs = {'p.yaml': str(tmp_path / 'p.yaml'), 'SWEEP.yaml': 'nbs/experiments/centroid_clustering.sweep.yaml',
            'out.ipynb': str(tmp_path / 'out.ipynb'), 'PAGE': str(tmp_path / 'page.html')}
    produce = [c for c in cmds if c.split(' ')[1] in ('run', 'sweep') or c.startswith('papermill')]
    # the seeds sweep makes the two configurations `compare CONFIG CONFIG` needs: it runs first
    produce.sort(key=lambda c: '--seeds' not in c)
    failures, found, done = [], {}, set()
    for cmd in produce + [c for c in cmds if c not in produce]:
        argv = shlex.split(cmd)
        pairs = sorted(tuple(argv[i + 1:i + 3]) for i, a in enumerate(argv) if a == '-p')
        same = (tuple(a for i, a in enumerate(argv) if a != '-p' and not (i and argv[i - 1] == '-p') and not (i > 1 and argv[i - 2] == '-p')), tuple(pairs))
        if same in done: continue      # the same command written with its -p pairs in another order: it ran already
        done.add(same)
        if {'RUN_ID', 'CONFIG', 'LAB_RUN', 'STUDY_RUN'} & set(argv):
            if not found:   # ids of the runs and configurations made above, as `reprlab results` prints them
                runs = json.loads(_run([str(BIN / 'reprlab'), 'results', 'quickstart', '--format', 'json']).stdout)
                configs = json.loads(_run([str(BIN / 'reprlab'), 'results', 'quickstart', '--by-config', '--format', 'json']).stdout)
                found['runs'] = [r['id'] for r in runs if r['status'] == 'ok']
                found['configs'] = [g['config'] for g in configs if g['n'] >= 2]
            ids = {'RUN_ID': iter(found['runs']), 'LAB_RUN': iter(found['runs']), 'STUDY_RUN': iter(found['runs'][1:]),
                   'CONFIG': iter(found['configs'])}
            argv = [next(ids[a]) if a in ids else a for a in argv]
        argv = [subs.get(a) or a for a in argv]
        if argv[0] == 'reprlab' and len(argv) == 2 and argv[1] in ('run', 'sweep', 'compare', 'leaderboard'):
            argv.append('--help')      # a subcommand named in passing (`reprlab run`): it exists
        if argv[0] == 'reprlab':
            argv[0] = str(BIN / 'reprlab')
            if cmd in DRY_RUN and '--dry-run' not in argv: argv.append('--dry-run')
            elif argv[1] in ('run', 'sweep') and argv[2:3] == ['quickstart'] and 'n_train' not in argv and '--params-file' not in argv:
                argv += TINY + (['-p', 'ks', '1,3'] if '--seeds' in argv else [])
        else:
            argv[0] = str(BIN / 'papermill')
        r = _run(argv)
        if r.returncode != 0:
            failures.append(f'{cmd!r} ran as {shlex.join(argv[1:])!r}: exit {r.returncode}: {r.stderr.strip()[-400:]}')
            continue
        if '--dry-run' in argv: assert r.stdout.startswith('dry run: '), (cmd, r.stdout)
        if '--json' in argv: assert json.loads(r.stdout)['status'] == 'ok', (cmd, r.stdout)
    assert not failures, '\n'.join(failures)
    assert (tmp_path / 'out.ipynb').is_file() and (tmp_path / 'page.html').is_file()
    summary = next((lab / 'reports' / 'quickstart' / 'sweeps').glob('*/report.html')).read_text(encoding='utf-8')
    assert re.search(r'<title>quickstart — sweep quickstart-\w+, summary</title>', summary), re.search(r'<title>.*?</title>', summary)


def test_dry_run_checks_and_starts_nothing(lab):
    "`--dry-run` refuses what the real command refuses (exit 2) and writes no run folder or store either way."
    bad = _run([str(BIN / 'reprlab'), 'run', 'quickstart', '-p', 'k', '3', '--dry-run'])
    assert bad.returncode == 2 and "unknown parameter(s) 'k'; did you mean 'ks'" in bad.stderr, bad.stderr
    ok = _run([str(BIN / 'reprlab'), 'run', 'quickstart', '-p', 'ks', '1,3', '--dry-run'])
    assert ok.returncode == 0 and json.loads(ok.stdout.split(' would run with ')[1].rsplit('; nothing', 1)[0])['ks'] == [1, 3]
    sweep = _run([str(BIN / 'reprlab'), 'sweep', 'quickstart', '--grid', 'metric=cosine,euclidean', '--seeds', '2', '--dry-run'])
    assert sweep.returncode == 0 and ': 4 points' in sweep.stdout, sweep.stdout + sweep.stderr
    assert not (lab / 'reports').exists() and not (lab / 'results.sqlite').exists()


def test_make_reference_time_agrees():
    "README and the Makefile give the same duration for `make reference`, and the committed runs' recorded times fit it."
    words = {'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7, 'eight': 8, 'nine': 9, 'ten': 10, 'eleven': 11, 'twelve': 12}
    readme = ' '.join((ROOT / 'README.md').read_text().split())
    makefile = ' '.join(l.lstrip('# ') for l in (ROOT / 'Makefile').read_text().splitlines() if l.startswith('#'))
    said = re.search(r'`make reference` \(needs real MNIST through `REPRLAB_DATA`; (\w+) to (\w+) hours on 2 cores', readme)
    assert said, 'README no longer says how long make reference takes'
    assert f'all of them ({said.group(1)} to {said.group(2)} hours on 2 cores)' in makefile, 'the Makefile says another time'
    low, high = words[said.group(1)], words[said.group(2)]
    seq, spans = 0.0, {}
    for f in (ROOT / 'reports' / 'reference').glob('*/*/environment.json'):
        env = json.loads(f.read_text())
        if not env.get('sweep'): seq += env.get('duration') or 0; continue
        spans.setdefault(env['sweep'], []).append(tuple(datetime.fromisoformat(env[k]) for k in ('started', 'finished')))
    # a sweep by its wall clock: the time covered by its runs, overlaps counted once (points may run on one worker or
    # two) and gaps left out (a sweep resumed later to add seeds ran in two sittings)
    for runs in spans.values():
        end = None
        for lo, hi in sorted(runs):
            if end is not None and lo < end: lo = end
            if hi > lo: seq += (hi - lo).total_seconds()
            end = hi if end is None else max(end, hi)
    hours = seq / 3600
    assert 0.8 * low <= hours <= 1.25 * high, f'the committed reference runs took {hours:.1f} h; the docs say {low} to {high}'


def site_commands() -> dict[str, list[str]]:
    "reprlab and papermill commands in the rest of the docs site: the library and experiment notebooks' prose, docs/pages."
    out: dict[str, list[str]] = {}
    nbs = sorted((ROOT / 'nbs').glob('*.ipynb')) + sorted((ROOT / 'nbs' / 'experiments').glob('*.ipynb'))
    for f in nbs:
        cells = json.loads(f.read_text())['cells']
        text = '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
        for c in doc_commands(text): out.setdefault(c, []).append(str(f.relative_to(ROOT)))
    for f in sorted((ROOT / 'docs' / 'pages').glob('*.md')):
        for c in doc_commands(f.read_text()): out.setdefault(c, []).append(str(f.relative_to(ROOT)))
    return {c: w for c, w in out.items() if c.split(' ')[0] in ('reprlab', 'papermill')}


def _placeholder(word: str) -> bool: return word == '...' or bool(re.fullmatch(r'[A-Z][A-Z_]+(\.\w+)?|.*[A-Z]{2,}:\d+', word))


def test_commands_in_the_docs_site_parse(lab):
    """Every reprlab and papermill command written in the notebooks' prose names a subcommand and options that exist; a
    complete `reprlab run` or `sweep` (no placeholder like NAME or ...) is checked with --dry-run; others, being
    fragments (`reprlab results`) or templates (`reprlab results EXPERIMENT --sweep NAME`), are checked for parsing."""
    cmds = site_commands()
    assert 'reprlab run quickstart -p dataset mnist -p n_train 10000' in cmds, sorted(cmds)
    helps: dict[tuple, str] = {}
    def help_of(*prog):
        if prog not in helps: helps[prog] = _help(*prog)
        return helps[prog]
    subcommands = re.search(r'\{([\w,]+)\}', help_of(str(BIN / 'reprlab'))).group(1).split(',')
    failures, dry = [], 0
    for cmd, where in cmds.items():
        argv = shlex.split(cmd)
        prog = [str(BIN / argv[0])] + ([argv[1]] if argv[0] == 'reprlab' and len(argv) > 1 and not argv[1].startswith('-') else [])
        if argv[0] == 'reprlab' and len(prog) > 1 and prog[1] not in subcommands:
            failures.append(f'{cmd!r} ({where[0]}): no subcommand {prog[1]!r}'); continue
        text = help_of(*prog)
        unknown = [a for a in argv if a.startswith('-') and a.split('=')[0] not in text]
        if unknown: failures.append(f'{cmd!r} ({where[0]}): {prog[-1]} has no option {unknown}'); continue
        complete = len(argv) > 2 and argv[1] in ('run', 'sweep') and not argv[2].startswith('-')   # names its experiment
        if argv[0] == 'reprlab' and complete and not any(map(_placeholder, argv)):
            r = _run([str(BIN / 'reprlab'), *argv[1:], '--dry-run'])
            dry += 1
            if r.returncode != 0: failures.append(f'{cmd!r} ({where[0]}): --dry-run exit {r.returncode}: {r.stderr.strip()[-300:]}')
    assert not failures, '\n'.join(failures)
    assert dry >= 3 and not (lab / 'reports').exists()
