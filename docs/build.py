#!/usr/bin/env python
"""Build reprlab's documentation site, offline: `make docs` (or `python docs/build.py`).

Pipeline, every step local (no Quarto, no network):

1. **nbdev processing** of each notebook (`nbs/index.ipynb`, the library notebooks `nbs/*.ipynb`, the experiment
   notebooks `nbs/experiments/*.ipynb`, the committed reference reports `reports/reference/*/*/report.ipynb` and
   sweep summaries `reports/reference/*/sweeps/*/report.ipynb`), with nbdev's own processors (those behind
   `nbdev.serve.proc_nbs`): `#| hide`/`#| export` cells dropped, `show_doc` cells added after exported
   definitions and rendered, backticked names linked to their API pages. Two processors are replaced: the
   frontmatter one (Quarto takes the page title from it and drops the whole first cell; here the first cell stays
   and is the page's title) and `exec_show_docs`, which here runs the import *statements* of a cell rather than the
   whole cell (nbdev runs cells that mix imports and other code, which fails when that code uses a variable of an
   unexecuted cell). `show_doc` renders for this site (docproc.site_markdown): the signature packed into lines
   that fit its box (which wraps the rest), the one-line docstring, and a table of the parameters from their
   docments comments (parameter, type, default, details); a class whose constructor comes from another package
   (a matplotlib Figure, an exception) shows its bases and its own docstring, never the other package's.
2. **Quarto -> MyST**: Quarto cell options become myst-nb cell tags (`echo: false` -> `remove-input`,
   `output: false` -> `remove-output`, `include: false` -> `remove-cell`), Quarto callouts (`::: {.callout-note}`)
   become MyST admonitions, Pandoc attributes (`[source](url){target="_blank"}`) are dropped, heading levels are
   made consecutive, widget outputs are reduced to their text (their JavaScript would come from a CDN). A report
   page leaves out the notebook's parameters cell (its defaults) and papermill's injected-parameters cell: the
   run-info block shows the run's parameters, once.
3. **Per-build additions** (docs/runs.py; not cached, since they depend on other files): links to the hosted docs
   (`doc_host`) become relative links inside this site; reference reports are titled by the parameters that tell
   them apart from the other reference runs of their experiment and carry a banner when stale (the notebook,
   library or data changed since, by `reprlab.analysis.staleness`) or when they recorded no digests; absolute
   paths of the machine that made a run become relative ones, and run ids and report paths links to the runs'
   pages; each experiment page lists its reference runs; runs committed without their notebook (a sweep's points)
   get a page from what their folder keeps; a page per declared metric that a reference run logged (its
   leaderboard, `reprlab.analysis.metric_page` over a temporary store of the reference runs) under Metrics.
4. **Sphinx** with myst-nb (stored outputs, never executed) and the furo theme, warnings as errors; MathJax from a
   local copy (`docs/node_modules/mathjax`, see `docs/package.json`), Sphinx's own offline search.
5. **Offline check**: every generated HTML/CSS file is scanned; a `<script src>`, `<link href>`, `<img src>`, CSS
   `@import` or `url(...)` that points outside the site fails the build (plain `<a href>` links are fine).

Step 1-2 are cached in `_proc/.cache` (keyed on the notebook, docproc.py, nbdev's version and, for library
notebooks, the library's code), so a rebuild after editing one notebook reprocesses that notebook only. Step 3 runs
at every build, and Sphinx always rebuilds every page (`-E`, in `_proc/.build/`, then moved to the output folder),
so that each build reports every warning.

A related check, `python docs/check_outputs.py`, fails when a library notebook that exports functions is committed
without any output (its API page would show no example result or figure).

Options: `--out DIR` (site, default `_site/`), `--proc DIR` (intermediate tree, default `_proc/`), `--workers N`,
`--force` (ignore the cache), `--no-check` (skip the offline check).
"""
from __future__ import annotations

import argparse, hashlib, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import docproc  # docs/docproc.py, importable by name in the worker processes
import runs     # docs/runs.py: the reference runs' titles, staleness, run and metric pages
from docproc import _src

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NBS = ROOT/'nbs'
REFERENCE = ROOT/'reports'/'reference'
MATHJAX = DOCS/'node_modules'/'mathjax'/'es5'
# The MathJax files the site needs: TeX input, CommonHTML output and what its menu loads on demand.
MATHJAX_PARTS = ['tex-chtml.js', 'input/tex', 'output/chtml', 'ui', 'a11y', 'sre', 'adaptors']

# --------------------------------------------------------------------------------------------------------------
# Which pages: whatever notebooks exist now (no fixed list).

def _strip_num(name: str) -> str:
    "nbdev's page name for a notebook file name: `01_data.ipynb` -> `data`"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', Path(name).stem.lower())


def collect_pages() -> list[dict]:
    "One entry per page: source notebook, page path (relative, without suffix), kind."
    pages = []
    index = NBS/'index.ipynb'
    if index.exists(): pages.append(dict(src=index, page='index', kind='home'))
    for p in sorted(NBS.glob('*.ipynb')):
        if p.name == 'index.ipynb' or p.name.startswith('.'): continue
        pages.append(dict(src=p, page=_strip_num(p.name), kind='lib'))
    for p in sorted((NBS/'experiments').glob('*.ipynb'), key=lambda p: (p.name.startswith('_'), p.name)):
        if p.name.startswith('.'): continue
        pages.append(dict(src=p, page=f'experiments/{p.stem}', kind='experiment'))
    for p in sorted(REFERENCE.glob('*/*/report.ipynb')):
        exp, run = p.parent.parent.name, p.parent.name
        if run == 'sweeps': continue
        pages.append(dict(src=p, page=f'reports/{exp}/{run}/report', kind='report', experiment=exp, run=run))
    for p in sorted(REFERENCE.glob('*/sweeps/*/report.ipynb')):
        exp, sweep = p.parent.parent.parent.name, p.parent.name
        pages.append(dict(src=p, page=f'reports/{exp}/sweeps/{sweep}/report', kind='sweep', experiment=exp, run=sweep))
    seen = {}
    for pg in pages:
        if pg['page'] in seen: raise SystemExit(f"docs: {pg['src']} and {seen[pg['page']]} would both be page {pg['page']}")
        seen[pg['page']] = pg['src']
    return pages

# --------------------------------------------------------------------------------------------------------------
# Generated pages: section indexes and the site's table of contents.

def _title(nb_path: Path) -> str:
    "The page title: the first markdown heading of the notebook."
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+?)\s*$', _src(c['source']), re.M)
            if m: return m.group(1)
    return nb_path.stem


def _description(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^>\s+(.+?)\s*$', _src(c['source']), re.M)
            return m.group(1) if m else ''
    return ''


def _toctree(entries, caption=None, hidden=True, maxdepth=1):
    opts = [f':maxdepth: {maxdepth}'] + ([f':caption: {caption}'] if caption else []) + ([':hidden:'] if hidden else [])
    return '```{toctree}\n' + '\n'.join(opts) + '\n\n' + '\n'.join(entries) + '\n```\n'


# Titles that replace a notebook's own first heading on its page (and in the sidebar): the template's heading is the
# placeholder that a new experiment replaces.
TITLES = {'experiments/_template': 'Template for a new experiment'}


def page_title(pg: dict) -> str:
    return TITLES.get(pg['page']) or _title(pg['src'])


def write_generated(pages: list[dict], proc: Path, site: dict):
    """The index pages of the experiments, of the reference reports and of the metrics, the metric pages and the
    pages of runs committed without their notebook; returns (library pages, other pages of the home page's table
    of contents, every generated page)."""
    lib = [p for p in pages if p['kind'] == 'lib']
    exps = [p for p in pages if p['kind'] == 'experiment']
    generated = {}

    rows = '\n'.join(f"| [{page_title(p)}]({Path(p['page']).name}.ipynb) | {_description(p['src'])} |"
                     for p in exps if not Path(p['page']).name.startswith('_'))
    extra = [p for p in exps if Path(p['page']).name.startswith('_')]
    md = ['# Experiments', '',
          'The experiment notebooks in `nbs/experiments/`: each is a parameterized notebook that '
          '`reprlab run NAME -p key value ...` executes with papermill into a report '
          '(`reports/NAME/RUN_ID/`). The pages show the notebooks as committed, without outputs; '
          'the [reference reports](../reports/index.md) show executed runs.', '',
          '| experiment | what it measures |', '|---|---|', rows, '']
    if extra:
        md += ['Notebooks whose name starts with `_` are not experiments that `reprlab run` lists, but the lab uses them:', '']
        md += [f"- [`{Path(p['src']).name}`]({Path(p['page']).name}.ipynb): {page_title(p)}. {_description(p['src'])}"
               for p in extra]
        md.append('')
    md.append(_toctree([f"{page_title(p)} <{Path(p['page']).name}>" for p in exps]))
    generated['experiments/index'] = '\n'.join(md)

    # reference reports: a section per experiment, its runs (each with a page, executed notebook or not) and sweeps
    md = ['# Reference reports', '',
          'The committed full-scale reference runs (`reports/reference/EXPERIMENT/RUN_ID/`, made by `make reference`), '
          'rendered from their executed `report.ipynb` with the outputs they were committed with, each titled by the '
          'parameters that tell it apart from the other reference runs of its experiment. The runs of a sweep are '
          'committed without their executed notebook: their pages show the parameters, metrics, hopes and dialog they '
          'kept. A run is *stale* when its notebook, the library code it imported or its data changed since it ran.', '']
    entries = []
    for exp in sorted({r['experiment'] for r in site['runs']} | {p['experiment'] for p in site['sweeps']}):
        md += [f'## {exp}', '']
        for r in [r for r in site['runs'] if r['experiment'] == exp]:
            sweep = r['env'].get('sweep')
            what = f"a point of sweep `{sweep}`" if sweep else 'executed notebook' if r['notebook'] else 'run folder'
            status = runs.stale_label(site['stale'][r['page']]) or 'current'
            md.append(f"- [{site['labels'][r['page']]}]({r['file'][len('reports/'):]}): run `{r['run']}`, "
                      f"{r['env'].get('started', '')[:10]}, {what}; {status}")
            if r['notebook'] or not sweep: entries.append(f"{site['titles'][r['page']]} <{r['page'][len('reports/'):]}>")
        for p in [p for p in site['sweeps'] if p['experiment'] == exp]:
            rel = p['page'][len('reports/'):]
            md.append(f"- [sweep `{p['run']}`]({rel}.ipynb): the summary of the sweep, with its runs")
            entries.append(f"{site['titles'][p['page']]} <{rel}>")
        md += [f'\nThe experiment: [`{exp}`](../{site["exp_pages"][exp]}.ipynb).' if exp in site['exp_pages'] else '', '']
    # the points of a sweep are listed on the sweep's summary, not in the sidebar's list of reports
    md += ['', _toctree(entries)]
    generated['reports/index'] = '\n'.join(md)
    for r in site['runs']:
        if r['notebook']: continue
        sweep = r['env'].get('sweep')
        sweep_page = f"reports/{r['experiment']}/sweeps/{sweep}/report" if sweep else None
        generated[r['page']] = runs.run_page(r, site['titles'][r['page']], site['stale'][r['page']],
                                             sweep_page if sweep_page in site['pages'] else None, site['exp_pages'].get(r['experiment']))

    metric_md, index = runs.metric_pages(site['runs'], site['run_pages'], site['exp_pages'])
    generated['metrics/index'] = index
    for name, text in metric_md.items(): generated[f'metrics/{name}'] = text
    generated['claims'] = scorecard_page(site['run_pages'])   # 'scorecard' is the library notebook's page
    generated['about'] = (DOCS/'pages'/'about.md').read_text(encoding='utf-8')
    for page, text in generated.items():
        (proc/page).parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(proc/f'{page}.md', text)
    return [p['page'] for p in lib], ['experiments/index', 'reports/index', 'metrics/index', 'claims', 'about'], set(generated)


def scorecard_page(run_pages: dict[str, str]) -> str:
    "The Scorecard page: every claim the experiments declare, judged on the committed reference runs (`reprlab scorecard`)."
    from reprlab.scorecard import scorecard, scorecard_markdown
    table = scorecard_markdown(scorecard(REFERENCE), link=lambda rid: run_pages.get(rid))
    return '\n'.join(['# Scorecard', '',
        "Which of the studies' claims hold here. Each experiment declares its study's claims in a cell tagged `claims`: the "
        "study's number, where the study says it, the lab metric that answers it, the setting it was made in and how it is "
        "judged. Each claim is scored on the committed reference runs (`reports/reference/`): the lab's mean ± standard "
        "deviation over seeds and n, the difference, whether the run's setting is the study's (the values that differ when it "
        "is not), and the verdict: *reproduced*, *within the seed spread* (short of the mark by less than two standard "
        "deviations), *not reproduced*, *not comparable* (other data or another model than the study's) or *not run*. A "
        "verdict marked *stale* was made by a notebook, library code or data that changed since; *uncommitted* by a tree with "
        "uncommitted changes. `reprlab scorecard` prints the same table; `make reference` regenerates the runs behind it.", '',
        table, ''])


def _write_if_changed(path: Path, text: str):
    if not path.exists() or path.read_text(encoding='utf-8') != text: path.write_text(text, encoding='utf-8')

# --------------------------------------------------------------------------------------------------------------
# Step 4: the offline check.

_EXTERNAL = re.compile(r'^\s*(https?:)?//', re.I)
_TAG_RE = re.compile(r'<(script|link|img|iframe|source|video|audio|embed|object|track|input)\b([^>]*)>', re.I | re.S)
_ATTR_RE = re.compile(r'\b(src|href|data|srcset|poster)\s*=\s*("([^"]*)"|\'([^\']*)\'|([^\s>]+))', re.I)
_CSS_RE = re.compile(r'@import\s+(?:url\()?\s*["\']?([^"\')\s;]+)|url\(\s*["\']?([^"\')]+)', re.I)
_STYLE_RE = re.compile(r'<style\b[^>]*>(.*?)</style>|\bstyle\s*=\s*"([^"]*)"', re.I | re.S)


def external_refs(site: Path) -> list[str]:
    "Every reference to a resource outside the site that a page or stylesheet of `site` would load."
    bad = []
    for f in sorted(site.rglob('*')):
        if f.suffix not in ('.html', '.css') or not f.is_file(): continue
        text = f.read_text(encoding='utf-8', errors='replace')
        rel = f.relative_to(site)
        css = [text] if f.suffix == '.css' else [a or b for a, b in _STYLE_RE.findall(text)]
        if f.suffix == '.html':
            for tag, attrs in _TAG_RE.findall(text):
                for name, _, v1, v2, v3 in _ATTR_RE.findall(attrs):
                    url = v1 or v2 or v3
                    urls = [u.strip().split(' ')[0] for u in url.split(',')] if name.lower() == 'srcset' else [url]
                    bad += [f'{rel}: <{tag} {name}="{u}">' for u in urls if _EXTERNAL.match(u)]
        for block in css:
            for a, b in _CSS_RE.findall(block):
                u = a or b
                if _EXTERNAL.match(u): bad.append(f'{rel}: CSS {u}')
    return bad

# --------------------------------------------------------------------------------------------------------------

def _key(job: dict, lib_hash: str) -> str:
    "What a processed page depends on: its notebook, docproc.py (the worker's code), nbdev, the job, the library."
    h = hashlib.sha256()
    import nbdev
    for part in (Path(job['src']).read_bytes(), Path(docproc.__file__).read_bytes(), nbdev.__version__.encode(),
                 json.dumps([job['page'], job['kind'], job['doc_url']]).encode(),
                 (lib_hash if job['kind'] in ('home', 'lib') else '').encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _lib_hash() -> str:
    h = hashlib.sha256()
    for f in sorted((ROOT/'reprlab').rglob('*.py')):
        h.update(f.relative_to(ROOT).as_posix().encode()); h.update(f.read_bytes())
    for f in (ROOT/'pyproject.toml', ROOT/'settings.ini'):
        if f.exists(): h.update(f.read_bytes())
    return h.hexdigest()


def _doc_url() -> str:
    "The hosted docs' URL that nbdev's links point at (`doc_host` + `doc_baseurl`), with a trailing slash."
    from nbdev.config import get_config
    cfg = get_config()
    host = (cfg.get('doc_host') or '').rstrip('/')
    return f"{host}{(cfg.get('doc_baseurl') or '').rstrip('/')}/" if host else ''


def process(pages: list[dict], proc: Path, workers: int, force: bool) -> float:
    "nbdev + Quarto->MyST processing of every notebook that changed, into `proc/.cache/pages/` (in parallel)."
    t0 = time.time()
    cache = proc/'.cache'
    (cache/'pages').mkdir(parents=True, exist_ok=True)
    lib_hash, doc_url = _lib_hash(), _doc_url()
    jobs = []
    for pg in pages:
        dst = cache/'pages'/f"{pg['page']}.ipynb"
        key_file = cache/'pages'/f"{pg['page']}.key"
        job = dict(pg, src=str(pg['src']), dst=str(dst), key_file=str(key_file), doc_url=doc_url)
        job['key'] = _key(job, lib_hash)
        pg['cached'] = dst
        if not force and dst.exists() and key_file.exists() and key_file.read_text() == job['key']: continue
        jobs.append(job)
    if jobs:
        print(f'docs: processing {len(jobs)} of {len(pages)} notebooks with nbdev ({workers} workers)', flush=True)
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context('spawn')) as ex:
                for page, s in ex.map(docproc.work, jobs): print(f'  {page} ({s:.1f}s)', flush=True)
        else:
            for job in jobs:
                page, s = docproc.work(job); print(f'  {page} ({s:.1f}s)', flush=True)
    else: print(f'docs: {len(pages)} notebooks, all processed already', flush=True)
    return time.time() - t0


def site_info(pages: list[dict]) -> dict:
    "What the pages say about the reference runs: titles, staleness, the page of each run id and experiment."
    refs = runs.reference_runs()
    labels = runs.run_labels(refs)
    titles = {r['page']: runs.run_title(r, labels[r['page']]) for r in refs}
    sweeps = [p for p in pages if p['kind'] == 'sweep']
    titles.update({p['page']: f"{p['experiment']} — sweep {p['run']}" for p in sweeps})
    cache: dict = {}
    stale = {r['page']: runs.staleness_of(r, cache) for r in refs}
    return dict(runs=refs, labels=labels, titles=titles, stale=stale, sweeps=sweeps,
                pages={p['page'] for p in pages} | {r['page'] for r in refs},
                run_pages={r['run']: r['file'] for r in refs},
                exp_pages={Path(p['page']).name: p['page'] for p in pages if p['kind'] == 'experiment'})


def _md(source: str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': source}


def _retitle(nb: dict, title: str, below: list[str]):
    "Replace the page's first heading by `title`, with the paragraphs `below` right under it."
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'markdown': continue
        src = docproc._src(c['source'])
        m = re.search(r'^#\s+.*$', src, re.M)
        if not m: continue
        rest = (src[:m.start()] + src[m.end():]).strip('\n')
        nb['cells'][i:i + 1] = [_md('\n\n'.join([f'# {title}', *[b for b in below if b]]))] + ([_md(rest)] if rest.strip() else [])
        return
    nb['cells'].insert(0, _md('\n\n'.join([f'# {title}', *[b for b in below if b]])))


def decorate(nb: dict, pg: dict, site: dict):
    """Per-build additions to a page: a report's title, header and staleness banner, relative paths and links to
    the runs; a sweep summary's runs; an experiment's reference runs."""
    page, up = pg['page'], '../'*pg['page'].count('/')
    exp = pg.get('experiment') or Path(page).name
    exp_link = f"[`{exp}`]({up}{site['exp_pages'][exp]}.ipynb)" if exp in site['exp_pages'] else f'`{exp}`'
    if pg['kind'] in ('report', 'sweep'):
        folder = pg['src'].parent.relative_to(ROOT).as_posix()
        run = next((r for r in site['runs'] if r['page'] == page), None)
        if pg['kind'] == 'report':
            header = (f"Reference run `{pg['run']}` of the experiment {exp_link} (*{_title(pg['src'])}*), committed in "
                      f"`{folder}/` with its metrics and figures; its parameters are in the run-info block below.")
            banner = runs.stale_banner(run, site['stale'][page]) if run else ''
        else:
            header = (f"Summary of the sweep `{pg['run']}` of the experiment {exp_link}, committed in `{folder}/`.")
            banner = ''
        _retitle(nb, site['titles'].get(page, _title(pg['src'])), [header, banner])
        runs.relative_paths(nb, page, site['run_pages'])
        if pg['kind'] == 'sweep':
            points = [r for r in site['runs'] if r['experiment'] == exp and r['env'].get('sweep') == pg['run']]
            if points:
                items = [f"- [{site['labels'][r['page']].removeprefix(pg['run'] + ': ')}]({up}{r['file']})" +
                         (f" ({runs.stale_label(site['stale'][r['page']])})" if site['stale'][r['page']] else '') for r in points]
                nb['cells'].append(_md('\n'.join(['## Runs of the sweep', '', *items])))
    elif pg['kind'] == 'experiment':
        if page in TITLES: _retitle(nb, TITLES[page], [f"The notebook `{pg['src'].relative_to(ROOT).as_posix()}`; its first "
                                                       f"heading, *{_title(pg['src'])}*, is the placeholder a new experiment replaces."])
        if exp.startswith('_'): return
        refs = [r for r in site['runs'] if r['experiment'] == exp and (r['notebook'] or not r['env'].get('sweep'))]
        sweeps = [p for p in site['sweeps'] if p['experiment'] == exp]
        if refs or sweeps:
            lines = ['## Reference runs', '',
                     f'The committed reference runs of this experiment (`reports/reference/{exp}/`), with their outputs:', '']
            for r in refs:
                label = runs.stale_label(site['stale'][r['page']])
                lines.append(f"- [{site['titles'][r['page']]}]({up}{r['file']}): run `{r['run']}`"
                             f"{', ' + r['env']['started'][:10] if r['env'].get('started') else ''}" + (f' ({label})' if label else ''))
            lines += [f"- [sweep `{p['run']}`]({up}{p['page']}.ipynb): its summary and its runs" for p in sweeps]
        else:
            lines = ['## Reference runs', '', f'No reference run of this experiment is committed; `reprlab run {exp}` makes a run '
                     f'in `reports/{exp}/`.']
        first = next((i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown'), -1)
        nb['cells'].insert(first + 1, _md('\n'.join(lines)))


def write_pages(pages: list[dict], proc: Path):
    """The Sphinx source tree: every processed page with its links resolved and its per-build additions, the report
    figures, the generated pages and the home page's table of contents; files of pages that no longer exist are
    removed."""
    doc_url = _doc_url()
    nbs = {pg['page']: json.loads(pg['cached'].read_text(encoding='utf-8')) for pg in pages}
    slugs = {page: docproc.page_slugs(nb) for page, nb in nbs.items()}
    keep = set()
    site = site_info(pages)
    lib_pages, other, generated = write_generated(pages, proc, site)
    for pg in pages:
        nb = docproc.link_pages(nbs[pg['page']], pg['page'], doc_url, slugs)
        decorate(nb, pg, site)
        if pg['kind'] == 'home':
            toc = _toctree(lib_pages, caption='Library') + '\n' + _toctree(other, caption='Lab')
            nb['cells'].append({'cell_type': 'markdown', 'id': 'site-toc', 'metadata': {}, 'source': toc})
        for i, c in enumerate(nb['cells']): c['id'] = f'cell-{i}'
        dst = proc/f"{pg['page']}.ipynb"
        dst.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(dst, json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        keep.add(dst)
        figs = pg['src'].parent/'figures'
        if pg['kind'] in ('report', 'sweep') and figs.is_dir():
            # relative `figures/...` references of a report keep working
            for f in figs.iterdir():
                if f.is_file(): keep.add(dst.parent/'figures'/f.name)
            shutil.copytree(figs, dst.parent/'figures', dirs_exist_ok=True)
    keep |= {proc/f'{p}.md' for p in generated}
    for f in list(proc.rglob('*')):
        rel = f.relative_to(proc).parts
        if f.is_file() and f not in keep and rel[0] not in ('.cache', '.build', '.static'): f.unlink()
    for d in sorted((d for d in proc.rglob('*') if d.is_dir()), key=lambda d: -len(d.parts)):
        if not any(d.iterdir()): d.rmdir()
    live = {pg['cached'] for pg in pages}  # cached pages of notebooks that no longer exist
    for f in list((proc/'.cache'/'pages').rglob('*.ipynb')):
        if f not in live: f.unlink(); f.with_suffix('.key').unlink(missing_ok=True)


def stage_mathjax(proc: Path):
    "Copy the local MathJax (npm package, see docs/package.json) to where conf.py's html_static_path takes it from."
    if not (MATHJAX/'tex-chtml.js').exists():
        raise SystemExit(f'docs: no local MathJax at {MATHJAX}: run `npm ci --prefix docs` (the `make docs` target does)')
    dst = proc/'.static'/'mathjax'
    stamp = dst/'.version'
    version = json.loads((MATHJAX.parent/'package.json').read_text())['version']
    if stamp.exists() and stamp.read_text() == version: return
    if dst.exists(): shutil.rmtree(dst)
    for part in MATHJAX_PARTS:
        s = MATHJAX/part
        if s.is_dir(): shutil.copytree(s, dst/part)
        else: dst.mkdir(parents=True, exist_ok=True); shutil.copy2(s, dst/part)
    stamp.write_text(version)


def sphinx(proc: Path, out: Path) -> float:
    "Sphinx, warnings as errors, into `proc/.build/html` (myst-nb writes beside it), then moved to `out`."
    t0 = time.time()
    html = proc/'.build'/'html'
    if (proc/'.build').exists(): shutil.rmtree(proc/'.build')
    env = dict(os.environ, REPRLAB_DOCS_PROC=str(proc))
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-E', '-W', '--keep-going', '-q', '-c', str(DOCS),
           '-d', str(proc/'.build'/'doctrees'), str(proc), str(html)]
    print('docs: ' + ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=env)
    if r.returncode: raise SystemExit(f'docs: sphinx-build failed (exit {r.returncode}): see the warnings above')
    if out.exists(): shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(html), str(out))
    return time.time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder of the site (default: _site/)')
    ap.add_argument('--proc', default=str(ROOT/'_proc'), help='intermediate Sphinx source tree (default: _proc/)')
    ap.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='nbdev processing workers')
    ap.add_argument('--force', action='store_true', help='reprocess every notebook (ignore the cache)')
    ap.add_argument('--no-check', action='store_true', help='skip the check for external resources')
    a = ap.parse_args(argv)
    t0 = time.time()
    out, proc = Path(a.out).resolve(), Path(a.proc).resolve()
    os.chdir(ROOT)  # nbdev finds its configuration (pyproject.toml) from the working folder
    pages = collect_pages()
    tp = process(pages, proc, a.workers, a.force)
    write_pages(pages, proc)
    stage_mathjax(proc)
    ts = sphinx(proc, out)
    if not a.no_check:
        bad = external_refs(out)
        if bad:
            print('docs: these pages would load resources from the internet:\n  ' + '\n  '.join(bad[:50]), file=sys.stderr)
            raise SystemExit(f'docs: {len(bad)} external resource reference(s) in {out}')
        print(f'docs: offline check passed (no external scripts, stylesheets, fonts or images in {out.name}/)')
    print(f'docs: {len(pages)} notebook pages in {out} (nbdev {tp:.0f}s, sphinx {ts:.0f}s, total {time.time()-t0:.0f}s); '
          f'open it with: python -m http.server -d {os.path.relpath(out, ROOT)}')


if __name__ == '__main__':
    main()
