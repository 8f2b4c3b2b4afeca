"""The committed reference runs on the documentation site; used by docs/build.py in its main process, at every build
(nothing here is cached: a run's staleness changes when the library does, its title when another run is added).

- **Titles**: a reference report is titled by the parameters that tell it apart from the other reference runs of its
  experiment (`dreamcomp — kx=20, ky=20, epochs=10, lr=0.006, ...`), in the order of the notebook's parameters cell;
  the only run of an experiment by the parameters it sets away from the notebook's defaults.
- **Staleness**: `reprlab.analysis.staleness` on the digests a run recorded (its environment.json); a stale report
  gets a banner, and so does one that recorded no digests ('digests not recorded').
- **Run pages** for run folders committed without their executed notebook (a sweep's points): their parameters,
  metrics, hopes and dialog, so that every run a sweep summary or a leaderboard names has a page.
- **Metric pages**: one per declared metric that a reference run logged (`*` patterns expanded to the logged names),
  from `reprlab.analysis.metric_page` on a temporary store of the reference runs (`reprlab.store.import_runs`).
- **Paths**: absolute paths of the machine that made a run become paths relative to the repository, and a run's
  report path or id becomes a link to its page.
"""
from __future__ import annotations

import json, math, re, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
REFERENCE = ROOT/'reports'/'reference'
RUN_ID = re.compile(r'\b\d{8}-\d{6}-[0-9a-f]{6}\b')
# Pages reached from an index page's table rather than from the sidebar: furo renders the whole navigation tree
# into every page, so a hundred metric pages in it would make each page bigger and the build slower.
ORPHAN = '---\norphan: true\n---\n'
_NOLINK = 'reprlab-docs:no-report'   # what the link callback of metric_page returns for a run without a report


def _json(path: Path):
    "A JSON file of a run folder; None when it is absent."
    if not path.exists(): return None
    try: return json.loads(path.read_text(encoding='utf-8'))
    except ValueError as e: raise SystemExit(f'docs: {path.relative_to(ROOT)}: not valid JSON ({e}); the run folder is damaged')


def fmt_value(v) -> str:
    "A parameter value as a title shows it: 0.006, 20, mnist, True."
    if isinstance(v, bool) or v is None: return str(v)
    if isinstance(v, float): return f'{v:g}' if math.isfinite(v) else str(v)
    if isinstance(v, (list, dict)): return json.dumps(v)
    return str(v)


def _make_target(exp: str) -> bool:
    "Whether the Makefile regenerates this experiment's reference runs (`make reference-EXP`)."
    mk = ROOT/'Makefile'
    return mk.exists() and re.search(rf'^reference-{re.escape(exp)}:', mk.read_text(encoding='utf-8'), re.M) is not None


def _regenerate(exp: str) -> str:
    return f'`make reference-{exp}` regenerates it.' if _make_target(exp) else f'`reprlab run {exp}` with its parameters makes a new one.'

# --------------------------------------------------------------------------------------------------------------
# The runs and their titles.

def reference_runs() -> list[dict]:
    "Every run folder `reports/reference/EXPERIMENT/RUN_ID/` (sweep summaries are not runs), with what it recorded."
    runs = []
    for env_path in sorted(REFERENCE.glob('*/*/environment.json')):
        d = env_path.parent
        if d.name == 'sweeps': continue
        env = _json(env_path) or {}
        if 'run_id' not in env: continue
        exp = d.parent.name
        runs.append(dict(experiment=exp, run=d.name, folder=d, env=env, params=_json(d/'params.json') or {},
                         metrics=_json(d/'metrics.json') or {}, hopes=_json(d/'hopes.json') or [],
                         page=f'reports/{exp}/{d.name}/report', notebook=(d/'report.ipynb').exists()))
        # the page's source: the executed notebook, else a generated Markdown page (`run_page`)
        runs[-1]['file'] = runs[-1]['page'] + ('.ipynb' if runs[-1]['notebook'] else '.md')
    return runs


def _declared_params(exp: str) -> dict:
    "The experiment's parameters (name -> reprlab.runner.Param, in the notebook's order); empty without its notebook."
    from reprlab.experiment import ParameterError, notebook_params
    nb = NBS/'experiments'/f'{exp}.ipynb'
    if not nb.exists(): return {}
    try: return notebook_params(nb)
    except ParameterError as e: raise SystemExit(f'docs: {nb.relative_to(ROOT)}: {e}')


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def run_labels(runs: list[dict], max_shown: int = 4) -> dict[str, str]:
    """Page -> what tells the run apart from the experiment's other reference runs: the parameters whose values
    differ between them, in the notebook's order (the first `max_shown`, or as many as it takes to tell the runs
    apart; the run-info block of the page lists them all). The points of a sweep are told apart among themselves
    (their label starts with the sweep's name); an experiment's only run outside sweeps by the parameters it sets
    away from the notebook's defaults."""
    out = {}
    groups: dict[tuple, list] = {}
    for r in runs: groups.setdefault((r['experiment'], r['env'].get('sweep')), []).append(r)
    for (exp, sweep), rs in groups.items():
        declared = _declared_params(exp)
        order = list(dict.fromkeys([*declared, *(k for r in rs for k in r['params'])]))
        if len(rs) > 1:
            keys = [k for k in order if len({json.dumps(r['params'].get(k), sort_keys=True) for r in rs}) > 1]

            def label(r, n):
                shown = [f"{k}={fmt_value(r['params'][k])}" for k in keys[:n] if k in r['params']]
                return ', '.join(shown + (['…'] if len(keys) > n else []))
            # the first `max_shown` differing parameters, more when these do not tell the runs apart
            n = min(max_shown, len(keys))
            while n < len(keys) and len({label(r, n) for r in rs}) < len(rs): n += 1
            labels = {r['page']: label(r, n) for r in rs}
            seen: dict[str, int] = {}
            for lab in labels.values(): seen[lab] = seen.get(lab, 0) + 1
            for r in rs:   # runs with the same parameters (a rerun): their ids tell them apart
                if seen[labels[r['page']]] > 1 or not labels[r['page']]:
                    labels[r['page']] = ', '.join(x for x in (labels[r['page']], f"run {r['run']}") if x)
        else:
            r = rs[0]
            keys = [k for k in order if k in r['params'] and k in declared and not _same(r['params'][k], declared[k].default)]
            shown = ', '.join(f"{k}={fmt_value(r['params'][k])}" for k in keys[:max_shown])
            labels = {r['page']: (shown + (', …' if len(keys) > max_shown else '')) if keys else 'notebook defaults'}
        out.update({p: f'{sweep}: {lab}' if sweep else lab for p, lab in labels.items()})
    return out


def run_title(run: dict, label: str) -> str: return f"{run['experiment']} — {label}"

# --------------------------------------------------------------------------------------------------------------
# Staleness.

def staleness_of(run: dict, cache: dict | None = None) -> list[str]:
    "What changed since the run ('notebook', 'library (module)', 'data (file)'), ['unknown'] without digests."
    from reprlab.analysis import staleness
    return staleness(run['experiment'], run['env'].get('digests'), cache)


def stale_label(changes: list[str]) -> str:
    "A short label for lists: '' when current."
    if not changes: return ''
    return 'digests not recorded' if changes == ['unknown'] else f"stale: {', '.join(changes)} changed"


def stale_banner(run: dict, changes: list[str]) -> str:
    "The banner of a run's page (MyST admonition, class `stale-banner`); '' when the run is current."
    if not changes: return ''
    if changes == ['unknown']:
        return (':::{admonition} Digests not recorded\n:class: note stale-banner\n'
                'This run recorded no digests of its notebook, of the library modules it imported and of the data files '
                'it read, so whether it still matches the current code cannot be told. '
                f"{_regenerate(run['experiment'])}\n:::\n")
    return (':::{admonition} Stale report\n:class: warning stale-banner\n'
            f"Since this run, its {', '.join(changes)} changed: the current code may not give these numbers and "
            f"figures. {_regenerate(run['experiment'])}\n:::\n")

# --------------------------------------------------------------------------------------------------------------
# Paths of the machine that made a run -> paths relative to the repository, links to the runs' pages.

# an absolute path that goes through reports/reference/ (on whichever machine made the run)
_ABS = re.compile(r'(?<![\w.~/-])/(?:[^\s/`\'"<>|()\[\]]+/)*?reports/reference/([^\s`\'"<>|()\[\]]*)')


def relative_paths(nb: dict, page: str, run_pages: dict[str, str]):
    """In a report page: a code span holding the absolute path of a run's report or folder -> a link to the run's
    page; any other absolute path under reports/reference/ -> relative to the repository; run ids in HTML tables
    -> links to their pages. `run_pages`: run id -> the source file of its page (`reports/EXP/RUN/report.ipynb`)."""
    up = '../'*page.count('/')

    def md(text: str) -> str:
        def span(m):
            rest = m.group(1)
            rid = next((p for p in rest.split('/') if RUN_ID.fullmatch(p)), None)
            if rid in run_pages and re.fullmatch(rf'[\w.-]+/{rid}/?(report\.html|report\.ipynb)?', rest):
                return f'[`reports/reference/{rest}`]({up}{run_pages[rid]})'
            return f'`reports/reference/{rest}`'
        text = re.sub(r'`' + _ABS.pattern + r'`', span, text)
        # a relative link to a run's report (a sweep summary's "best run" link) -> the run's page
        text = re.sub(r'\]\((?:\.\./|\./)*(?:[\w.-]+/)*?(' + RUN_ID.pattern + r')/report\.(?:html|ipynb)\)',
                      lambda m: f']({up}{run_pages[m.group(1)]})' if m.group(1) in run_pages else m.group(0), text)
        return _ABS.sub(lambda m: f'reports/reference/{m.group(1)}', text)

    def html(text: str) -> str:
        text = _ABS.sub(lambda m: f'reports/reference/{m.group(1)}', text)
        return re.sub(r'(<td[^>]*>)\s*(' + RUN_ID.pattern + r')\s*(</td>)',
                      lambda m: (f'{m.group(1)}<a href="{up}{Path(run_pages[m.group(2)]).with_suffix(".html").as_posix()}">{m.group(2)}</a>{m.group(3)}'
                                 if m.group(2) in run_pages else m.group(0)), text)

    def _s(x): return ''.join(x) if isinstance(x, list) else (x or '')
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': c['source'] = md(_s(c['source']))
        for o in c.get('outputs', []):
            d = o.get('data', {})
            if 'text/markdown' in d: d['text/markdown'] = md(_s(d['text/markdown']))
            if 'text/html' in d: d['text/html'] = html(_s(d['text/html']))
            if 'text/plain' in d: d['text/plain'] = _ABS.sub(lambda m: f'reports/reference/{m.group(1)}', _s(d['text/plain']))
            if o.get('output_type') == 'stream': o['text'] = _ABS.sub(lambda m: f'reports/reference/{m.group(1)}', _s(o.get('text')))

# --------------------------------------------------------------------------------------------------------------
# A page for a run folder without its executed notebook.

def _md_cell(text) -> str: return ' '.join(str(text).split()).replace('|', r'\|')


def run_page(run: dict, title: str, changes: list[str], sweep_page: str | None, exp_page: str | None) -> str:
    "The Markdown page of a run committed without its notebook: run info, parameters, metrics, hopes, dialog."
    from reprlab.analysis import declared_metrics
    from reprlab.experiment import find_metric
    up = '../'*run['page'].count('/')
    exp, env = run['experiment'], run['env']
    exp_link = f"[`{exp}`]({up}{exp_page}.ipynb)" if exp_page else f'`{exp}`'
    sweep = env.get('sweep')
    of = (f"of the sweep [`{sweep}`]({up}{sweep_page}.ipynb) " if sweep and sweep_page else
          f"of the sweep `{sweep}` " if sweep else '')
    folder = run['folder'].relative_to(ROOT).as_posix()
    md = [ORPHAN + f'# {title}' if sweep else f'# {title}', '',
          f"Reference run `{run['run']}` {of}of the experiment {exp_link}. Its executed notebook and HTML report are not "
          f"committed (to keep the repository small): this page shows what its folder `{folder}/` keeps."
          + ('' if changes else f' {_regenerate(exp)}'), '']   # (the banner says it otherwise)
    banner = stale_banner(run, changes)
    if banner: md += [banner]
    commit = env.get('commit')
    info = [('run', f"`{run['run']}`"), ('reprlab', env.get('versions', {}).get('reprlab', '')),
            ('torch', env.get('versions', {}).get('torch', '')),
            ('commit', (f'`{commit[:10]}`' + (' (uncommitted changes)' if env.get('dirty') else '')) if commit else 'unknown'),
            ('device', env.get('device_name') or env.get('device', '')), ('seed', env.get('seed', '')),
            ('started', env.get('started', '')), ('status', env.get('status', '')),
            ('duration', f"{env['duration']:.0f} s" if isinstance(env.get('duration'), (int, float)) else '')]
    md += ['**Run info**', '', '|  |  |', '|---|---|'] + [f'| {k} | {_md_cell(v)} |' for k, v in info if v != ''] + ['']
    if run['params']:
        md += ['**Parameters**', '', '| parameter | value |', '|---|---|']
        md += [f'| {k} | {_md_cell(fmt_value(v))} |' for k, v in sorted(run['params'].items())] + ['']
    if run['metrics']:
        declared = declared_metrics(exp)
        md += ['## Metrics', '', '| metric | value | unit | description |', '|---|---|---|---|']
        for k, v in run['metrics'].items():
            m = find_metric(declared, k)
            val = f'{v:.4g}' if isinstance(v, float) else fmt_value(v)
            md.append(f"| `{k}` | {_md_cell(val)} | {_md_cell(m.unit if m else '')} | {_md_cell(m.description if m else '')} |")
        md.append('')
    if run['hopes']:
        md += ['## Hopes', '', '| hope | result | detail |', '|---|---|---|']
        md += [f"| {_md_cell(h.get('hope', ''))} | {'met' if h.get('met') else 'not met'} | {_md_cell(h.get('detail', ''))} |"
               for h in run['hopes']] + ['']
    dialog = run['folder']/'dialog.md'
    if dialog.exists() and dialog.read_text(encoding='utf-8').strip():
        text = re.sub(r'^(#+)', r'##\1', dialog.read_text(encoding='utf-8').strip(), flags=re.M)  # its headings below ours
        md += ['## Analysis dialog', '', text, '']
    return '\n'.join(md)

# --------------------------------------------------------------------------------------------------------------
# Metric pages.

def _logged_names(runs: list[dict]) -> dict[str, set]:
    "Experiment -> the metric names its successful reference runs logged (with a value)."
    out: dict[str, set] = {}
    for r in runs:
        if r['env'].get('status') != 'ok': continue
        out.setdefault(r['experiment'], set()).update(k for k, v in r['metrics'].items() if v is not None)
    return out


def metric_names(runs: list[dict]) -> tuple[dict[str, list], dict[str, list]]:
    """(metric name -> experiments that declare it and whose reference runs logged it; experiment -> declared names
    that none of its reference runs logged). Patterns are expanded to the logged names they match; the lab's
    built-in counters (hopes_met, hopes_total) are on every report page and get no page."""
    from reprlab.experiment import LAB_METRICS, ParameterError, list_experiments, notebook_metrics
    logged = _logged_names(runs)
    names: dict[str, list] = {}
    unlogged: dict[str, list] = {}
    for exp, path in list_experiments().items():
        try: declared = notebook_metrics(path)
        except ParameterError as e: raise SystemExit(f'docs: {path.relative_to(ROOT)}: {e}')
        for name, m in declared.items():
            if name in LAB_METRICS: continue
            hits = sorted(n for n in logged.get(exp, ()) if m.matches(n))
            if not hits and exp in logged: unlogged.setdefault(exp, []).append(name)
            for n in hits:
                if exp not in names.setdefault(n, []): names[n].append(exp)
    return dict(sorted(names.items())), unlogged


def metric_file(name: str) -> str:
    "The page name of a metric (a logged name is any string: characters a file name should not hold become _)."
    return re.sub(r'[^A-Za-z0-9_.-]', '_', name)


def _link_runs(md: str, run_pages: dict[str, str], up: str) -> str:
    "Run ids that a leaderboard could not link (runs without a report) -> links to the runs' own pages."
    def linked(rid): return f'[{rid}]({up}{run_pages[rid]})' if rid in run_pages else rid
    md = re.sub(r'\[(' + RUN_ID.pattern + r')\]\((?:' + re.escape(_NOLINK) + r'|nan|None)\)', lambda m: linked(m.group(1)), md)
    return re.sub(r'(\| )(' + RUN_ID.pattern + r')( \|\s*)$', lambda m: m.group(1) + linked(m.group(2)) + m.group(3), md, flags=re.M)


def _unranked_page(metric: str, store, link, why: str) -> str:
    "The page of a metric that cannot be ranked (`why`): who logs it and its values per configuration."
    import pandas as pd
    from reprlab.analysis import leaderboard, metric_meanings
    lb = leaderboard(metric, store, better='higher').sort_values(['experiment', 'mean'], ascending=[True, False], kind='stable')
    lines = [f'# Metric `{metric}`', '',
             f'> Every configuration that logged `{metric}`, listed by experiment, not ranked: {why}.', '']
    lines += metric_meanings(metric, lb['experiment'])
    lines += ['', '| experiment | n | mean ± std | parameters | run |', '|---|---|---|---|---|']
    for _, r in lb.iterrows():
        spread = f" ± {r['std']:.3g}" if pd.notna(r['std']) else ''
        run = f"[{r['best_run']}]({link(r['report'])})"
        lines.append(f"| {r['experiment']} | {r['n']} | {r['mean']:.4g}{spread} | {_md_cell(r['parameters'] or '-')} | {run} |")
    return '\n'.join(lines) + '\n'


def metric_pages(runs: list[dict], run_pages: dict[str, str], exp_pages: dict[str, str]) -> tuple[dict[str, str], str]:
    "({page name: Markdown} of the metrics, the Metrics index page), from a temporary store of the reference runs."
    from reprlab.analysis import declared_metrics, metric_page
    from reprlab.experiment import find_metric
    from reprlab.store import Store, import_runs
    names, unlogged = metric_names(runs)
    up = '../'
    report_pages = {(REFERENCE/Path(f).parent.relative_to('reports')/'report.html').resolve(): f for f in run_pages.values()}

    def link(report):
        "The page of a run's report.html (an absolute path in the store)."
        if not isinstance(report, str): return _NOLINK
        f = report_pages.get(Path(report).resolve())
        return f'{up}{f}' if f else _NOLINK

    pages, rows = {}, []
    with tempfile.TemporaryDirectory(prefix='reprlab-docs-') as tmp:
        store = Store(Path(tmp)/'reference.sqlite')
        import_runs(REFERENCE, store)
        for name, exps in names.items():
            decl = [(e, find_metric(declared_metrics(e), name)) for e in exps]
            better = {m.better for _, m in decl if m and m.better}
            try:
                if len(better) == 1: md = metric_page(name, store, link=link)
                else: md = _unranked_page(name, store, link, 'no direction (higher or lower is better) is declared for it'
                                          if not better else f"its declarations disagree on the direction ({', '.join(f'{e}: {m.better}' for e, m in decl if m and m.better)})")
            except ValueError as e:   # no successful reference run logged it (e.g. only failed runs did)
                if 'logged the metric' in str(e): continue
                raise SystemExit(f'docs: the page of metric {name!r}: {e}')
            pages[name] = _link_runs(md, run_pages, up)
            m0 = next((m for _, m in decl if m), None)
            rows.append(f"| [`{name}`]({metric_file(name)}.md) | {', '.join(f'[`{e}`]({up}{exp_pages[e]}.ipynb)' if e in exp_pages else f'`{e}`' for e in exps)} "
                        f"| {'/'.join(sorted(better)) or '(not ranked)'} | {_md_cell(m0.unit if m0 else '')} "
                        f"| {_md_cell(m0.description if m0 else '')} |")
    md = ['# Metrics', '',
          'Each experiment declares its metrics in its `METRICS` cell (name, description, unit, whether higher or lower is '
          'better, which one is primary). A page per declared metric that a committed reference run logged (a declared '
          'pattern such as `seconds_*` gives a page per logged name it matches): which experiments log it, and its '
          'leaderboard over their reference configurations, best first (`reprlab leaderboard METRIC` gives the same over '
          'your own results store).', '',
          '| metric | logged by | better | unit | description |', '|---|---|---|---|---|', *rows, '']
    if unlogged:
        md += ['Declared, but logged by none of the reference runs of their experiment:', '']
        md += [f"- `{e}`: {', '.join(f'`{n}`' for n in ns)}" for e, ns in sorted(unlogged.items())] + ['']
    return {metric_file(name): ORPHAN + text for name, text in pages.items()}, '\n'.join(md)
