"""The house rules of reprlab's layout, checked on the sources: experiment notebooks type no number into a dialog
sentence (every number in `say()` comes from a variable: a metric, a parameter, PRESETS, CLAIMS)."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT/'nbs'/'experiments').glob('*.ipynb'))
TYPED = re.compile(r'(?<![\w.])\d+(\.\d+)?\s*%|(?<![\w.])\d+\.\d+')   # a decimal or a percentage typed as text


def code_cells(path: Path) -> list[str]:
    "The code cells of a notebook, IPython magics and shell lines blanked (they are not Python)."
    nb = json.loads(path.read_text())
    return ['\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in ''.join(c['source']).splitlines())
            for c in nb['cells'] if c['cell_type'] == 'code']


def literal_text(node) -> list[str]:
    "The text typed into a string expression: constants, the literal parts of f-strings, both sides of + and of `a if c else b`."
    if isinstance(node, ast.Constant) and isinstance(node.value, str): return [node.value]
    if isinstance(node, ast.JoinedStr): return [v.value for v in node.values if isinstance(v, ast.Constant)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add): return literal_text(node.left) + literal_text(node.right)
    if isinstance(node, ast.IfExp): return literal_text(node.body) + literal_text(node.orelse)
    return []


def typed_numbers(source: str) -> list[str]:
    "Each say(...) call of a cell whose literal text holds a decimal or a percentage: the offending text."
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == 'say':
            for text in literal_text(node.args[0]):
                if (m := TYPED.search(text)): found.append(f"line {node.lineno}: {m.group(0)!r} in {text.strip()[:70]!r}")
    return found


def test_the_check_finds_typed_numbers_and_spares_computed_ones():
    assert typed_numbers('say(f"the study reports 92.83% and we get {acc:.2%}")') == ["line 1: '92.83%' in 'the study reports 92.83% and we get'"]
    assert typed_numbers('say("within " + "0.6 points")') and typed_numbers('say("a" if x else "95 %")')
    assert typed_numbers('say(f"{acc:.2%} with R = 10 on 3 seeds, 1-cycle, {gap:.1f} points")') == []
    assert typed_numbers('print("92.8%")') == []


@pytest.mark.parametrize('path', EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_say_types_no_numbers(path):
    bad = [f"cell {i}, {f}" for i, src in enumerate(code_cells(path)) for f in typed_numbers(src)]
    assert not bad, f"{path.name}: numbers typed into say(); take them from a variable (metric, parameter, PRESETS, CLAIMS):\n" + '\n'.join(bad)


def _tagged(path: Path, tag: str) -> list[str]:
    nb = json.loads(path.read_text())
    return [''.join(c['source']) for c in nb['cells'] if tag in c.get('metadata', {}).get('tags', [])]


@pytest.mark.parametrize('path', [p for p in EXPERIMENTS if p.stem != '_sweep_summary'], ids=lambda p: p.stem)
def test_hopes_are_declared_once_and_checked_by_key(path):
    "The intro's hopes and hope() come from one declaration: a `hopes` cell with HOPES; every hope() names one of its keys."
    cells = _tagged(path, 'hopes')
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'hopes' holding HOPES = {{key: sentence}}, found {len(cells)}"
    hopes = ast.literal_eval(ast.parse(cells[0]).body[0].value)
    used = set()
    for src in code_cells(path):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'hope' and node.args:
                key = node.args[0]
                assert isinstance(key, ast.Constant) and key.value in hopes, \
                    f"{path.name}: hope({ast.unparse(key)}, ...) must name a key of HOPES: {', '.join(hopes)}"
                used.add(key.value)
    assert used == set(hopes), f"{path.name}: HOPES never checked: {sorted(set(hopes) - used)}"
    intro = ''.join(json.loads(path.read_text())['cells'][0]['source'])
    assert not re.search(r'\*\*Hopes\*\*:?\s*\n\s*1\. ', intro), f"{path.name}: the intro lists its hopes by hand; they are the HOPES cell"


# --- the layout: modules in dependency order, small cells, experiments that only call the library

LIBRARY = ROOT / 'reprlab'
NOTEBOOKS = sorted((ROOT / 'nbs').glob('[0-9][0-9]_*.ipynb'))


def module_numbers() -> dict[str, int]:
    "module name -> the number of the notebook that exports it (`#| default_exp`)."
    out = {}
    for nb in NOTEBOOKS:
        first = ''.join(json.loads(nb.read_text())['cells'][0]['source'])
        if (m := re.match(r'#\|\s*default_exp\s+(\w+)', first)): out[m.group(1)] = int(nb.name[:2])
    return out


def imports_of(path: Path) -> set[str]:
    "The reprlab modules a module imports, at its top or inside functions."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = ('reprlab.' + node.module if node.level == 1 and node.module else node.module) or ''
            if node.level == 1 and not node.module: found |= {a.name for a in node.names}
            elif mod.startswith('reprlab.'): found.add(mod.split('.')[1])
            elif mod == 'reprlab': found |= {a.name for a in node.names if (LIBRARY / f'{a.name}.py').exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('reprlab.')}
    return found - {path.stem}


def test_notebook_numbers_follow_the_import_graph():
    "Each module imports only modules of lower-numbered notebooks: no circle, no arrow from a lower notebook to a higher one."
    numbers = module_numbers()
    modules = {p.stem for p in LIBRARY.glob('*.py') if not p.stem.startswith('_')}
    assert modules <= set(numbers), f"modules without a notebook: {sorted(modules - set(numbers))}"
    assert len(set(numbers.values())) == len(numbers), f"two notebooks share a number: {numbers}"
    upward = [f"{m} ({numbers[m]:02d}) imports {d} ({numbers[d]:02d})" for m in sorted(modules)
              for d in sorted(imports_of(LIBRARY / f'{m}.py')) if d in numbers and numbers[d] > numbers[m]]
    assert not upward, 'imports against the notebook order:\n' + '\n'.join(upward)


def test_the_check_finds_an_upward_import(tmp_path):
    (p := tmp_path / 'store.py').write_text("def f():\n    from reprlab.analysis import groups\nfrom .config import x\nimport reprlab.plots\n")
    assert imports_of(p) == {'analysis', 'config', 'plots'}


def test_runner_holds_one_concern():
    "The runner is the run's lifecycle only (the experiment's declarations and the rendering live in their own modules)."
    n = len((LIBRARY / 'runner.py').read_text().splitlines())
    assert n < 350, f"runner.py has {n} lines"


def exported_cells(path: Path):
    for c in json.loads(path.read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and re.match(r'#\|\s*export', src): yield c.get('id'), src


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_no_exported_cell_over_60_lines(path):
    "One idea per exported cell (nbdev's style): a function, a small class, or a class's further methods as `@patch` cells."
    long = [f"cell {i}: {src.count(chr(10)) + 1} lines" for i, src in exported_cells(path) if src.count('\n') + 1 > 60]
    assert not long, f"{path.name}: " + ', '.join(long)


LOOPS = {r'\.backward\(': 'a backward pass', r'\.zero_grad\(': 'an optimiser step', r'\boptim\.\w+\(': 'an optimiser',
         r'for \w*epoch\w* in ': 'an epoch loop', r'range\(\s*seed\s*,': 'a loop over seeds (use `reprlab sweep --seeds`)',
         r"\.split\(\s*['\"],['\"]\s*\)": 'a list parameter split by hand (declare it list[...])'}


@pytest.mark.parametrize('path', EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_notebooks_only_call_the_library(path):
    "Training loops, seed loops and parameter parsing belong to the library; an experiment notebook calls it and tells."
    found = [f"cell {i}: {what} ({m.group(0)!r})" for i, src in enumerate(code_cells(path))
             for pat, what in LOOPS.items() for m in [re.search(pat, src)] if m]
    assert not found, f"{path.name}:\n" + '\n'.join(found)
