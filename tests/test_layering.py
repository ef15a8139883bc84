"""The folders of ``beam_cross`` are its layers, and imports only point down.

``core`` imports no other layer and no framework; the front doors (``beam``, ``tf``, ``tft``) import
the core only; the ``job`` imports the core and the Beam front door. Two imports cross front doors:
``CrossFeatures(engine="tensorflow")`` loads ``beam_cross.tf.engine`` on first use (lazy), and the
tf.Transform front door builds the transforms of a cross with ``beam_cross.tf.transform_ops`` (TF ops
only, no Keras), the ops a served graph uses too. Checked twice: by reading every module's imports (``ast``), and by importing each
layer in a fresh interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "beam_cross"
FRAMEWORKS = ("apache_beam", "tensorflow", "keras", "tf_keras", "tensorflow_transform")

# Layer -> the beam_cross layers its modules may import (itself included) and the frameworks it may load.
MAY_IMPORT = {
    "core": {"core"},
    "beam": {"core", "beam"},
    "tf": {"core", "tf"},
    "tft": {"core", "tf", "tft"},  # the transforms' TF ops (tf.transform_ops) are shared by the graph front doors
    "job": {"core", "beam", "job"},
}
MAY_LOAD = {
    "core": set(),
    "beam": {"apache_beam"},
    "tf": {"tensorflow", "keras"},
    "tft": {"apache_beam", "tensorflow", "keras", "tf_keras", "tensorflow_transform"},
    "job": {"apache_beam"},
}
# Imports inside a function that cross layers on purpose (README, "Layout"): (importing module, imported module).
LAZY_ACROSS = {("beam_cross.beam.transforms", "beam_cross.tf.engine")}
# The top-level modules and the layer each belongs to: the public API, ``python -m beam_cross``, an old path.
TOP_LEVEL = {"beam_cross": "core", "beam_cross.__main__": "job", "beam_cross.mltransform": "beam"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    layer = module.split(".")[1]
    assert layer in MAY_IMPORT, f"{module} is in no layer: put it in one of {sorted(MAY_IMPORT)}"
    return layer


def imports_of(module: str) -> list[tuple[str, bool]]:
    """``(imported beam_cross module, at module level?)`` for each import of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    found = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            inside = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names if alias.name.startswith("beam_cross"))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("beam_cross"):
                for alias in child.names:
                    submodule = f"{child.module}.{alias.name}"
                    found.append((submodule if submodule in MODULES else child.module, inside))
            visit(child, inside)

    visit(tree, True)
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    layer = layer_of(module)
    wrong = []
    for imported, top in imports_of(module):
        if imported == "beam_cross" or layer_of(imported) in MAY_IMPORT[layer]:
            continue
        if not top and (module, imported) in LAZY_ACROSS:
            continue
        wrong.append(f"{imported} ({'module level' if top else 'in a function'})")
    assert wrong == [], f"{module} (layer {layer}) imports a layer it may not: {wrong}"


def test_documented_lazy_imports_exist():
    # A stale exception would let a real one through unnoticed.
    for module, imported in LAZY_ACROSS:
        assert (imported, False) in imports_of(module)


def test_no_import_cycle_at_module_level():
    graph = {m: sorted({i for i, top in imports_of(m) if top and i != m}) for m in MODULES}
    done, path = set(), []

    def walk(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for imported in graph.get(module, ()):
            walk(imported)
        path.pop()
        done.add(module)

    for module in graph:
        walk(module)


def test_every_module_says_what_it_holds_and_stays_small():
    for module, path in MODULES.items():
        text = path.read_text()
        docstring = ast.get_docstring(ast.parse(text))
        assert docstring and docstring.splitlines()[0].strip(), f"{module} has no docstring saying what it holds"
        assert len(text.splitlines()) <= 400, f"{module} has {len(text.splitlines())} lines; split it by what it holds"


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_importing_a_layer_loads_only_what_it_may(layer):
    modules = [m for m in MODULES if m != "beam_cross" and layer_of(m) == layer]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | "
        "{'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('beam_cross.')})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    layers = {m.split(".")[1] for m in loaded if m.startswith("beam_cross.")} & set(MAY_IMPORT)
    assert layer in layers
    assert layers - MAY_IMPORT[layer] == set(), f"importing the {layer} layer loaded {sorted(layers)}"
    frameworks = loaded & set(FRAMEWORKS)
    assert frameworks - MAY_LOAD[layer] == set(), f"importing the {layer} layer loaded {sorted(frameworks)}"
