#!/usr/bin/env python
"""Fail when a library notebook that exports functions or classes is committed without any output.

The documentation site shows the notebooks with the outputs they were committed with (nothing is executed when it
is built), so a library notebook saved unexecuted gives an API page without a single example result, figure or
explorer picture. This check lists such notebooks and exits with status 1:

    .venv/bin/python docs/check_outputs.py            # the library notebooks nbs/*.ipynb
    .venv/bin/python docs/check_outputs.py nbs/18_topo.ipynb ...

A notebook counts as exporting when one of its `#| export` / `#| exports` / `#| exporti` cells defines a function or
a class at top level; it passes when at least one of its code cells has an output (of any kind). To fix a flagged
notebook, run it top to bottom (in JupyterLab, or `.venv/bin/jupyter nbconvert --to notebook --execute --inplace
nbs/NN_name.ipynb`), then `.venv/bin/nbdev-clean --fname nbs/NN_name.ipynb`, and commit it.
"""
from __future__ import annotations

import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)')
_EXPORTS = {'export', 'exports', 'exporti'}


def _src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def _directives(source: str) -> set[str]:
    "The nbdev directives (`#| name ...`) at the top of a code cell."
    out = set()
    for line in source.splitlines():
        if not line.strip(): continue
        m = _DIRECTIVE.match(line)
        if not m: break
        out.add(m.group(1).lower())
    return out


def exported_definitions(nb: dict) -> list[str]:
    "Names of the functions and classes that the notebook's export cells define at top level."
    names = []
    for c in nb.get('cells', []):
        if c.get('cell_type') != 'code': continue
        src = _src(c.get('source'))
        if not _directives(src) & _EXPORTS: continue
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))  # magics are not Python
        try: tree = ast.parse(code)
        except SyntaxError: continue   # nbdev-export reports it; not this check's business
        names += [t.name for t in tree.body if isinstance(t, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return names


def n_outputs(nb: dict) -> int:
    return sum(len(c.get('outputs') or []) for c in nb.get('cells', []) if c.get('cell_type') == 'code')


def check(paths) -> list[str]:
    "One line per notebook that exports functions or classes and has no output at all."
    bad = []
    for p in paths:
        p = Path(p)
        nb = json.loads(p.read_text(encoding='utf-8'))
        defs = exported_definitions(nb)
        if defs and n_outputs(nb) == 0:
            public = [d for d in defs if not d.startswith('_')] or defs
            shown = ', '.join(public[:5]) + (f' and {len(defs) - len(public[:5])} more' if len(defs) > len(public[:5]) else '')
            bad.append(f'{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: exports {len(defs)} '
                       f'definitions ({shown}) but no cell has an output')
    return bad


def library_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if p.name != 'index.ipynb' and not p.name.startswith('.'))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ('-h', '--help') for a in argv): print(__doc__); return 0
    paths = [Path(a).resolve() for a in argv] or library_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing: print(f"check_outputs: no such notebook: {', '.join(missing)}", file=sys.stderr); return 2
    bad = check(paths)
    if bad:
        print(f'check_outputs: {len(bad)} library notebook(s) committed without outputs; their API pages would show '
              f'no example result or figure. Execute each, then nbdev-clean --fname it, and commit:', file=sys.stderr)
        for line in bad: print(f'  {line}', file=sys.stderr)
        return 1
    print(f'check_outputs: every one of {len(paths)} notebooks that export functions has outputs')
    return 0


if __name__ == '__main__':
    sys.exit(main())
