"""The layers: the pure package ``curricula`` never imports torch, transformers or the glue ``hf_trainer_ext``; the
LFR core (``curricula.methods.lfr``) imports none of them either."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "transformers", "hf_trainer_ext", "accelerate")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):  # module level and inside functions (lazy imports count too)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_no_module_of_the_pure_package_imports_torch_transformers_or_the_glue():
    offenders = [f"{p.relative_to(ROOT)}:{line}: import {name}"
                 for p in sorted((ROOT / "curricula").rglob("*.py"))
                 for line, name in _imports(p) if name.split(".")[0] in FORBIDDEN]
    assert not offenders, "\n".join(offenders)


def test_the_pure_package_imports_with_torch_and_transformers_unavailable():
    code = f"""
import sys, pkgutil, importlib
for name in {FORBIDDEN!r}:
    sys.modules[name] = None  # any import of them raises ImportError
import curricula
mods = [m.name for m in pkgutil.walk_packages(curricula.__path__, 'curricula.')]
for m in mods:
    importlib.import_module(m)
from curricula.methods import METHODS
from curricula.methods import load_recipe
from curricula.recipes import bundled
for r in bundled():
    load_recipe(r)
assert {{'lfr', 'mixture', 'replay', 'group_dro', 'doremi_online'}} <= set(METHODS)
print(len(mods))
"""
    env = {**os.environ, "USE_TORCH": "0", "USE_TF": "0", "USE_JAX": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) > 30  # every module was imported


def test_core_imports_no_torch_or_transformers():
    import subprocess

    code = (
        "import sys, curricula.methods.lfr; "
        "bad = [m for m in ('torch', 'transformers', 'datasets', 'accelerate') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_the_trainer_mixin_stays_small_and_never_asks_what_a_curriculum_is():
    """The driver is thin: ``CurriculumMixin`` is at most 250 lines (its components have their own modules), and no
    glue module asks a curriculum what it is (``hasattr``, or ``isinstance`` against a method class): every hook has a
    default, and a capability is asked for by a hook (``node_shared()``)."""
    tree = ast.parse((ROOT / "hf_trainer_ext" / "trainer.py").read_text())
    [mixin] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CurriculumMixin"]
    assert mixin.end_lineno - mixin.lineno + 1 <= 250
    asks = []
    for p in sorted((ROOT / "hf_trainer_ext").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("hasattr", "isinstance") and node.args:
                target, kind = ast.unparse(node.args[0]), ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                about_a_method = node.func.id == "hasattr" or kind.endswith(("Curriculum", "Mixture"))
                if about_a_method and (target in ("cur", "curriculum") or target.endswith(".curriculum")):
                    asks.append(f"{p.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not asks, "\n".join(asks)
