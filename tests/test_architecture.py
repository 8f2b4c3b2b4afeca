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
