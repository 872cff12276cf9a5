"""The package's layering, read from the source (issue 13).

Every rins module belongs to one layer of :data:`LAYERS` (bottom to top) and imports only from its own layer or
the layers below: module-level imports and the lazy ones inside functions alike (only ``if TYPE_CHECKING:``
blocks are exempt, they never run). The imports form no cycle, the analysis modules load without torch, no
module takes another's private name, and the README's Architecture section lists the same layers.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "rins"
README = PKG.parent / "README.md"

# The layers, bottom to top (what each owns: the README's Architecture section). A module may import from its
# own layer and the layers before it in this list, never from a later one. A new module needs a row here.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"rins.plan", "rins.fields", "rins.arguments", "rins.resources", "rins.runfiles", "rins.losses",
                    "rins.data", "rins.loggers", "rins.runs", "rins.hardware", "rins.flops", "rins.corpora",
                    "rins.corpora.documents", "rins.corpora.cache", "rins.corpora.packages", "rins.corpora.parsers",
                    "rins.corpora.files", "rins.corpora.huggingface", "rins.corpora.mixes", "rins.stopping"}),
    ("core", {"rins.model", "rins.adaptive", "rins.siglip", "rins.checkpoint", "rins.distributed",
              "rins.vision_data", "rins.zeroshot"}),
    ("tasks", {"rins.tasks", "rins.tasks.base", "rins.tasks.lm", "rins.tasks.vision"}),
    ("config", {"rins.config"}),
    ("trainer", {"rins.schedule", "rins.resume", "rins.train"}),
    # studies & interop
    ("studies", {"rins.evaluation", "rins.generation", "rins.sweep", "rins.scaling", "rins.report", "rins.claims",
                 "rins.study_report", "rins.adaptive_report", "rins.plots", "rins.tables", "rins.demo", "rins.hf",
                 "rins.hf_export", "rins.hf_export.configuration_rins", "rins.hf_export.modeling_rins",
                 "rins.lm_eval_adapter"}),
    ("cli", {"rins.cli", "rins"}),
]
LAYER_OF = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
# analysis modules: pure Python + numpy/scipy/matplotlib; a user can fit and report without torch
NO_TORCH = ("rins.plan", "rins.fields", "rins.runs", "rins.scaling", "rins.report", "rins.claims",
            "rins.study_report", "rins.adaptive_report", "rins.plots", "rins.tables", "rins.flops")
# shipped inside exported Hugging Face folders, where rins is not installed
STANDALONE = ("rins.hf_export",)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    """One import of a rins module by another: ``module`` imports ``target`` at ``line`` (``lazy``: inside a
    function, so it runs on call rather than on import)."""

    module: str
    target: str
    line: int
    lazy: bool

    @property
    def where(self) -> str:
        return f"{MODULES[self.module].relative_to(PKG.parent)}:{self.line}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportReader(ast.NodeVisitor):
    """Every import of a known rins module in one source file, outside ``if TYPE_CHECKING:`` blocks."""

    def __init__(self, module: str, type_checking: bool = False) -> None:
        self.module = module
        self.type_checking = type_checking  # also the imports under `if TYPE_CHECKING:` (type hints only)
        self.package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        self.depth = 0  # > 0 inside a function body
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        if target in MODULES and target != self.module:
            self.found.append(Import(self.module, target, node.lineno, self.depth > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test) and not self.type_checking:  # type hints only: never executed
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:  # `import rins.tasks.lm`: the longest prefix that is a module
            parts = a.name.split(".")
            self._add(next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                            if ".".join(parts[:k]) in MODULES), ""), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
        for target in subs:  # `from . import model`: the submodule (the package itself is already loaded)
            self._add(target, node)
        if len(subs) < len(node.names):  # names defined in `mod` itself
            self._add(mod, node)


def read_imports(type_checking: bool = False) -> list[Import]:
    """Every import of a rins module by a rins module, module level and lazy; those under ``if TYPE_CHECKING:``
    only with ``type_checking``."""
    out: list[Import] = []
    for module, path in MODULES.items():
        reader = _ImportReader(module, type_checking)
        reader.visit(ast.parse(path.read_text(), str(path)))
        out += reader.found
    return out


def module_imports(lazy: bool = True, type_checking: bool = False) -> dict[str, set[str]]:
    """``{module: rins modules it imports}`` (with ``lazy=False``: only those imported when it loads; with
    ``type_checking``: also those imported for type hints only)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in read_imports(type_checking):
        if lazy or not imp.lazy:
            graph[imp.module].add(imp.target)
    return graph


def test_the_import_reader_sees_lazy_imports_and_skips_type_checking():
    imports = [i for i in read_imports() if i.module == "rins.study_report"]
    # rins.runs (RunInfo): TYPE_CHECKING only
    assert {(i.target, i.lazy) for i in imports} == {("rins.tables", False), ("rins.scaling", True)}
    assert {i.target for i in read_imports() if i.module == "rins.tasks.lm" and i.lazy} == {"rins.data"}


def test_every_module_has_a_layer():
    listed = [m for _, mods in LAYERS for m in mods]
    assert len(listed) == len(set(listed)), "a module is in two layers of LAYERS"
    missing = sorted(set(MODULES) - set(listed))
    assert not missing, (f"{missing} have no layer: add each to the layer it belongs to in LAYERS "
                         "(tests/test_architecture.py) and to the README's Architecture section")
    stale = sorted(set(listed) - set(MODULES))
    assert not stale, f"LAYERS lists modules that no longer exist: {stale}; remove them (and from the README)"


def test_no_import_points_up():
    """Each import goes down the layers (or stays inside one): the lower layers never depend on the upper."""
    up = []
    for imp in read_imports():
        if imp.module not in LAYER_OF or imp.target not in LAYER_OF:
            continue  # test_every_module_has_a_layer names it
        src, dst = LAYER_OF[imp.module], LAYER_OF[imp.target]
        if dst > src:
            up.append(f"{imp.where}: {imp.module} ({LAYERS[src][0]}) imports {imp.target} ({LAYERS[dst][0]}), "
                      f"a layer above it{' (lazily)' if imp.lazy else ''}. Fix: move the code that needs "
                      f"{imp.target} up into the {LAYERS[dst][0]} layer or above, or move what it uses down to "
                      f"the {LAYERS[src][0]} layer or below (as rins.fields was split out of rins.config); an "
                      f"import for type hints only goes under `if TYPE_CHECKING:`")
    assert not up, "upward imports:\n" + "\n".join(up)


def test_imports_have_no_cycle():
    """No loop, counting the lazy imports inside functions and those for type hints only too (a loop is a layer
    that should be split, or a type that lives in the wrong module)."""
    graph = module_imports(type_checking=True)
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                loop = path[path.index(d):] if d in path else [d]
                raise AssertionError("import cycle: " + " -> ".join([*loop, m, d]))
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert len(graph) > 20


def test_standalone_export_code_imports_no_rins_module():
    for imp in read_imports():
        if imp.module.startswith(STANDALONE) and not imp.target.startswith(STANDALONE):
            raise AssertionError(f"{imp.where}: {imp.module} ships without rins, but imports {imp.target}")


def test_analysis_layer_never_imports_the_trainer_or_model():
    graph = module_imports(lazy=False)
    heavy = {"rins.train", "rins.model", "rins.demo", "rins.checkpoint", "rins.config", "rins.data"}
    for m in NO_TORCH:
        assert not graph[m] & heavy, (m, graph[m] & heavy)


def test_analysis_layer_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            f"import {', '.join(NO_TORCH)}\n"
            "import rins; assert rins.compile_plan('A^2B', 4).layers == (0, 1, 0, 1, 2, 3)\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_lazy_api_still_resolves():
    import rins

    assert rins.RecursiveLM.__name__ == "RecursiveLM" and rins.LMConfig().n_layers > 0
    assert callable(rins.load_config) and rins.TrainConfig.__name__ == "TrainConfig"


def _readme_entry(module: str) -> str:
    """How the README's diagram names a module: ``x.py``, a subpackage as ``x/``, the package as ``__init__.py``."""
    parts = module.split(".")[1:]
    return "__init__.py" if not parts else f"{parts[0]}/" if len(parts) > 1 or (PKG / parts[0]).is_dir() \
        else f"{parts[0]}.py"


def test_readme_architecture_matches_the_layers():
    """The diagram in the README's Architecture section: one row per layer (its name first, continuation rows
    without a name), listing exactly that layer's files and folders."""
    text = README.read_text()
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    names = {name for name, _ in LAYERS}
    shown: dict[str, set[str]] = {}
    layer = None
    for line in block.splitlines():
        words = line.split()
        if words and words[0] in names:
            layer = words[0]
        entries = set(re.findall(r"\b[\w]+\.py\b|\b[\w]+/", line))
        if entries:
            assert layer, f"README Architecture diagram: {line!r} comes before any layer's row"
            shown.setdefault(layer, set()).update(entries)
    expected = {name: {_readme_entry(m) for m in mods} for name, mods in LAYERS}
    assert shown == expected, {n: (sorted(shown.get(n, set()) ^ e)) for n, e in expected.items()
                               if shown.get(n) != e}
    order = [n for n in (w.split()[0] for w in block.splitlines() if w.split()) if n in names]
    assert order == [name for name, _ in reversed(LAYERS)], f"README diagram rows, top to bottom: {order}"


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Private names (``_x``, not dunders) that ``module``'s source takes from other rins modules: by an
    import anywhere in the file, or as ``mod._x`` on a name bound to a rins module."""
    package = module if is_package else module.rpartition(".")[0]
    private = lambda name: name.startswith("_") and not name.startswith("__")  # noqa: E731
    found, modules = [], set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "rins":
                continue
            for a in node.names:
                if private(a.name):
                    found.append(f"{module}: from {mod} import {a.name}")
                elif f"{mod}.{a.name}" in MODULES:
                    modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name.split(".")[0] == "rins")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and private(node.attr)):
            found.append(f"{module}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another():
    """A ``_name`` is its module's own business: a helper another module needs is public or moves to it.
    rins/hf_export is exported as a standalone package and not checked."""
    assert private_imports("from .data import _fetch, load\nfrom . import model\nmodel._x", "rins.vision_data") \
        == ["rins.vision_data: from rins.data import _fetch", "rins.vision_data:3: model._x"]
    assert private_imports("from ..plan import _p", "rins.tasks.lm") == ["rins.tasks.lm: from rins.plan import _p"]
    found = [f for m, path in MODULES.items() if "hf_export" not in path.parts
             for f in private_imports(path.read_text(), m, path.name == "__init__.py")]
    assert not found, found


def test_no_function_is_longer_than_80_lines():
    """A function over 80 lines does several jobs: split it into named steps (issue 26)."""
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


# the files of a run directory; rins.runs names them and is the only module that opens them
RUN_FILES = ("log.jsonl", "summary.json", "config.json", "tokenizer.json", "data_identity.json", ".lock")
# where the same names mean other files: Hugging Face model folders (hf.py), the data cache (data.py, corpora/),
# the demo's own summary of its three runs (demo.py)
OTHER_FOLDERS = {"rins.hf": ("config.json", "tokenizer.json"), "rins.data": ("tokenizer.json", ".lock"),
                 "rins.demo": ("summary.json",)}


def test_run_directory_files_are_named_only_in_runs():
    """Issue 26: `runs.py` is the one reader and writer of a run directory's files; anyone else asks it."""
    found = []
    for module, path in MODULES.items():
        if module == "rins.runs" or module.startswith(STANDALONE):
            continue
        allowed = OTHER_FOLDERS.get(module, ())
        if module.startswith("rins.corpora"):
            allowed = (".lock",)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            # a file name as a path part (`run / "config.json"`, f"{run}.lock", "*.lock"), not inside a sentence
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value.lstrip("*")
                if name in RUN_FILES and name not in allowed:
                    found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.value!r}")
    assert not found, "run-directory file names outside rins/runs.py:\n" + "\n".join(found)
