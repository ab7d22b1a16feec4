"""The import graph of ``src/pftflow``, built from the source with ``ast``: no cycle, no import up the layer
order written in docs/architecture.md ("Layers: what each package may import"), and no function-local
import of a pftflow module without a ``# local:`` reason.  Module-level and function-local imports both
count; importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (an edge to it), unless the importer sits
inside that package already.  A small synthetic package shows that an added cycle is caught.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "pftflow"
DOC = ROOT / "docs" / "architecture.md"
LOCAL_REASON = "# local:"
#: calls that import the module their first argument names (the registry's deferred kinds)
DEFERRED_CALLS = {"DeferredKind", "import_module"}


# ------------------------------------------------------------------------------------ the graph
def modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``src``."""
    out = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(src: Path) -> list[tuple[str, str, int, bool]]:
    """``(importer, imported module, line, function_local)`` of every import of the package inside it."""
    mods = modules(src)
    pkg = src.name

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    out = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        in_function = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                       for n in ast.walk(fn) if n is not fn}
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in DEFERRED_CALLS \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names = [node.args[0].value]  # a module imported by name when first used: an import all the same
            else:
                continue
            found = set()
            for n in names:
                if n != pkg and not n.startswith(pkg + "."):
                    continue
                t = resolve(n)
                if t is None:
                    continue
                found.add(t)
                parts = t.split(".")  # the packages on the way run their __init__
                found |= {".".join(parts[:k]) for k in range(1, len(parts))}
            for t in found:
                if t != mod and not mod.startswith(t + "."):
                    out.append((mod, t, node.lineno, id(node) in in_function))
    return out


def cycles(edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def doc_layers(text: str) -> list[list[str]]:
    """The numbered layer list of the "Layers" section: ``N. `a`, `b` — what they are``, lowest first."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for line in section.splitlines():
        m = re.match(r"^(\d+)\. ((?:`[a-z_]+`(?:, )?)+)", line)
        if m:
            assert int(m.group(1)) == len(layers) + 1, f"docs/architecture.md: layer {m.group(1)} out of order"
            layers.append(re.findall(r"`([a-z_]+)`", m.group(2)))
    return layers


def layer_violations(edges, layers: list[list[str]], pkg: str = "pftflow") -> list[str]:
    rank = {name: i for i, names in enumerate(layers) for name in names}
    out = []
    for a, b, line, _ in edges:
        ta, tb = a.split(".")[1:2], b.split(".")[1:2]
        if not ta or not tb or ta == tb:
            continue  # the root package, or inside one package (cycles are checked apart)
        if rank[tb[0]] > rank[ta[0]]:
            out.append(f"{a} (layer {rank[ta[0]] + 1}, line {line}) imports {b} (layer {rank[tb[0]] + 1})")
    return sorted(out)


# ------------------------------------------------------------------------------------ the tree
@pytest.fixture(scope="module")
def edges():
    return imports(SRC)


def test_the_layers_in_the_doc_name_every_package_once():
    layers = doc_layers(DOC.read_text())
    listed = [n for names in layers for n in names]
    tree = sorted({p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.glob("*")
                   if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()})
    assert len(layers) >= 10
    assert sorted(listed) == tree, "docs/architecture.md's layer list and the packages of src/pftflow differ"
    assert len(listed) == len(set(listed))


def test_no_import_cycle(edges):
    assert cycles(edges) == []


def test_no_import_goes_up_the_layers(edges):
    assert layer_violations(edges, doc_layers(DOC.read_text())) == []


def text_of(path: Path, cache: dict) -> list[str]:
    return cache.setdefault(path, path.read_text().splitlines())


def test_function_local_imports_say_why(edges):
    lines = {}
    bad = []
    files = modules(SRC)
    for a, b, line, local in edges:
        path = files[a]
        rel = path.relative_to(SRC).as_posix()
        if not local:
            continue
        text = text_of(path, lines)
        if LOCAL_REASON not in text[line - 1]:
            bad.append(f"{rel}:{line} imports {b} inside a function without a '{LOCAL_REASON} <reason>' comment")
    assert sorted(set(bad)) == []


def test_the_registry_imports_only_kind_modules_and_the_plumbing_no_kind(edges):
    from pftflow.flows.campaigns import KINDS

    registry = {b for a, b, *_ in edges if a == "pftflow.flows.campaigns"} - {"pftflow", "pftflow.flows"}  # DeferredKind("...")
    assert registry == {f"pftflow.flows.{m}" for m in ("phonons_campaign", "kappa_campaign", "training", "dataset",
                                                        "finetune_per_material", "finetune_global")}
    assert list(KINDS) == ["phonons", "kappa", "finetune", "dataset", "finetune_per_material", "finetune_global"]
    for plumbing in ("pftflow.flows.reuse", "pftflow.flows.benchmark"):
        assert not {b for a, b, *_ in edges if a == plumbing} & (registry | {"pftflow.flows.campaigns"})


def test_no_module_over_about_500_lines():
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 550}
    assert long == {}


# ------------------------------------------------------------------------------------ the checks can fail
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "toy"
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


TOY = {
    "__init__.py": "",
    "low/__init__.py": "",
    "low/a.py": "X = 1\n",
    "high/__init__.py": "",
    "high/b.py": "from toy.low.a import X\n",
}


def test_an_added_cycle_fails(tmp_path):
    clean = _package(tmp_path / "clean", TOY)
    assert cycles(imports(clean)) == []
    # a function-local import back up closes a circle: low.a -> high.b -> low.a
    looped = _package(tmp_path / "looped", {**TOY, "low/a.py": "X = 1\n\n\ndef f():\n    from toy.high.b import X as Y\n\n    return Y\n"})
    assert cycles(imports(looped)) == [["toy.high.b", "toy.low.a"]]
    # a relative import counts too, and so does a package's __init__, which importing toy.low.a runs
    rel = _package(tmp_path / "rel", {**TOY, "low/__init__.py": "from ..high import b\n"})
    assert cycles(imports(rel)) == [["toy.high.b", "toy.low"]]


def test_an_import_up_the_layers_fails(tmp_path):
    layers = [["low"], ["high"]]
    root = _package(tmp_path, {**TOY, "low/a.py": "def f():\n    from toy.high import b  # local: a reason does not lift it\n"})
    assert layer_violations(imports(root), layers, pkg="toy") == ["toy.low.a (layer 1, line 2) imports toy.high (layer 2)",
                                                                   "toy.low.a (layer 1, line 2) imports toy.high.b (layer 2)"]
    assert layer_violations(imports(_package(tmp_path / "ok", TOY)), layers, pkg="toy") == []
    assert doc_layers("## Layers\n\n1. `low` — below\n2. `high`, `top` — above\n\n## Next\n3. `x`\n") == [["low"], ["high", "top"]]
