"""Project-level checks: the README's commands, the import graph, the packaging pins."""
import ast, configparser, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / 'ltkd_fastai'

# DESIGN.md's import rules: a module may import only the modules listed for it.
ALLOWED = {
    'losses': set(), 'longtail': set(), 'models': set(), 'checkpoints': {'models'}, 'distributed': set(), 'features': set(),
    'data': {'longtail'}, 'metrics': {'longtail'},
    'distill': {'distributed', 'features', 'losses', 'longtail', 'metrics', 'models', 'checkpoints'},
    'teacher': {'distributed', 'features', 'distill', 'checkpoints', 'losses', 'longtail', 'metrics', 'models', 'data'},
    'aid': {'distributed', 'losses', 'longtail', 'metrics', 'models', 'checkpoints', 'distill', 'teacher'},
    'plots': {'distributed', 'features', 'losses', 'longtail', 'metrics', 'models', 'checkpoints', 'data', 'distill', 'teacher', 'aid'},
    'experiment': {'distributed', 'features', 'losses', 'longtail', 'metrics', 'models', 'checkpoints', 'data', 'distill', 'teacher', 'plots', 'aid'},
}

def package_imports(path):
    "Names of ltkd_fastai modules imported by the module at `path`."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: found |= {mod.split('.')[0]} if mod else {a.name for a in node.names}
            elif mod.startswith('ltkd_fastai.'): found.add(mod.split('.')[1])
            elif mod == 'ltkd_fastai': found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('ltkd_fastai.')}
    return found - {'_modidx', ''}

def test_import_graph_follows_design():
    for mod, allowed in ALLOWED.items():
        path = LIB / f'{mod}.py'
        if not path.exists(): continue
        bad = package_imports(path) - allowed - {mod}
        assert not bad, f"ltkd_fastai.{mod} imports {sorted(bad)}, which DESIGN.md does not allow"

def test_no_library_module_imports_all_or_experiment():
    for path in LIB.glob('*.py'):
        if path.stem in ('all', 'experiment', '_modidx'): continue
        assert not package_imports(path) & {'all', 'experiment'}, path.name

def readme_commands():
    return [l.strip() for l in (ROOT / 'README.md').read_text().splitlines() if l.strip().startswith('pip install')]

def test_readme_has_the_two_commands():
    cmds = readme_commands()
    assert 'pip install -e . && ltkd_experiment' in cmds
    test_cmd = [c for c in cmds if c.startswith('pip install -e ".[dev]"')]
    assert len(test_cmd) == 1, cmds
    assert 'nbdev_test' in test_cmd[0] and 'pytest tests' in test_cmd[0]

def test_ci_runs_the_readme_test_command():
    ci = (ROOT / '.ci' / 'run').read_text()
    assert re.search(r"grep -m1 -E '\^pip install -e \"\\\.\\\[dev\\\]\"' README\.md", ci), "CI must read the test command from README.md"
    assert 'nbdev_export' in ci and 'nbdev_clean' in ci and 'git status --porcelain' in ci

def test_pins_and_loose_runtime_requirements():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    d = cfg['DEFAULT']
    dev = d['dev_requirements'].split()
    # plum-dispatch 2.10 holds an RLock in every dispatch function: fasttransform 0.0.2 (fastai 2.8.7) then cannot pickle
    # any transform, so learn.export() fails; fasttransform 0.0.5 pins plum-dispatch<2.10 itself
    for pin in ('nbdev==2.4.14', 'fastcore<2', 'execnb<0.2', 'fastai==2.8.7', 'plum-dispatch<2.10', 'torch==2.14.1', 'torchvision==0.29.1'):
        assert pin in dev, pin
    runtime = d['requirements'].split()
    assert 'fastai>=2.7' in runtime
    assert not any('==' in r or '<' in r for r in runtime), f"runtime requirements must stay loose: {runtime}"
    assert 'pkg_resources' not in (ROOT / 'setup.py').read_text()

def test_every_module_has_a_notebook():
    nbs = {p.stem for p in (ROOT / 'nbs').glob('*.ipynb')}
    for path in LIB.glob('*.py'):
        if path.stem.startswith('_'): continue
        assert any(n.split('_', 1)[-1] == path.stem for n in nbs), f"{path.name} has no notebook in nbs/"


def test_ci_installs_into_its_own_new_virtual_environments():
    "A side venv with --system-site-packages sees the base interpreter's packages, not an active venv's (issue 12)"
    ci = (ROOT / '.ci' / 'run').read_text()
    assert '--system-site-packages' not in ci
    assert ci.count(' -m venv ') >= 2, "CI makes a new venv for the README's test command and one for the newest fastai"
    assert re.search(r'source "\$work/dev/bin/activate"', ci)
