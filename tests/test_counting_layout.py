"""The counting package's rule registry, the counter's old import path, and the import structure: no
circle among the modules of sepconv.counting, sepconv.models and the model half's modules."""

import ast
import pathlib

import jax.numpy as jnp
import pytest

import sepconv
from sepconv import counter, counting
from sepconv.counting import RULES, Rules, count, dot_record

SRC = pathlib.Path(sepconv.__file__).parent


def test_a_registry_refuses_a_second_rule_and_names_the_primitive():
    rules = Rules()
    rules.register("dot_general", dot_record)
    with pytest.raises(ValueError, match="^a cost rule for primitive 'dot_general' is registered already$"):
        rules.register("dot_general", lambda eqn: None)
    assert rules.for_primitive("dot_general") is dot_record and rules.for_primitive("mul") is None


def test_the_shared_rules_cannot_be_overwritten_silently():
    with pytest.raises(TypeError):
        counting.COST_RULES["dot_general"] = lambda eqn: None  # a read-only view
    with pytest.raises(ValueError, match="'conv_general_dilated' is registered already"):
        counting.register_cost_rule("conv_general_dilated", lambda eqn: None)
    assert counting.COST_RULES["dot_general"] is dot_record


def test_a_copy_of_the_rules_extends_without_changing_them():
    extended = RULES.copy()
    extended.register("my_primitive", lambda eqn: None)
    assert "my_primitive" in extended.primitives and "my_primitive" not in RULES.primitives
    assert extended.for_primitive("dot_general") is RULES.for_primitive("dot_general")


def test_the_counter_module_is_the_package():
    assert counter.count is counting.count and counter.__all__ == counting.__all__
    assert all(getattr(counter, name) is getattr(counting, name) for name in counting.__all__)
    assert count(lambda a, b: a @ b, jnp.ones((3, 4)), jnp.ones((4, 5))).macs == 3 * 4 * 5


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set:
    """Every sepconv module ``path`` imports, at module level or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("sepconv") and _exists(m) and m != name}


def _exists(module: str) -> bool:
    rel = pathlib.Path(*module.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


MODEL_HALF = ["counting", "models", "kinds.py", "cost.py", "blocks.py", "shapes_only.py", "published.py",
              "validation.py", "layers.py", "counter.py"]


def test_the_model_half_imports_without_a_circle():
    files = [p for entry in MODEL_HALF for p in ((SRC / entry).rglob("*.py") if (SRC / entry).is_dir()
                                                  else [SRC / entry])]
    graph = {_module_name(p): _imports(p) for p in files}
    # a package's __init__ re-exporting its modules is not a circle: follow modules, not packages
    packages = {_module_name(p) for p in files if p.name == "__init__.py"}
    edges = {m: {t for t in targets if t in graph and t not in packages} for m, targets in graph.items()}
    assert "sepconv.models.catalog" in edges["sepconv.models.mobilenet_v2"]
    assert "sepconv.models.zoo" in edges["sepconv.models.registry"]
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
