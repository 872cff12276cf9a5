"""The package's layering, read from the source: module-level imports form no cycle, the analysis layer
(plan, runs, scaling, report, study_report) loads without torch and never imports the trainer."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "rins"
# analysis modules: pure Python + numpy/scipy/matplotlib; a user can fit and report without torch
NO_TORCH = ("rins.plan", "rins.runs", "rins.scaling", "rins.report", "rins.study_report")


def module_imports() -> dict[str, set[str]]:
    """``{module: rins modules it imports at module level}`` (imports inside functions are lazy on purpose)."""
    out: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = name if rel.name == "__init__" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.startswith("rins"):
                    deps.add(mod)
                    deps.update(f"{mod}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("rins"))
        out[name] = deps
    known = set(out)
    return {m: {d for d in deps if d in known and d != m} for m, deps in out.items()}


def test_module_level_imports_have_no_cycle():
    graph = module_imports()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert len(graph) > 20


def test_analysis_layer_never_imports_the_trainer_or_model():
    graph = module_imports()
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


def test_tasks_never_import_the_trainer():
    """The trainer runs tasks; a task never reaches up into the loop (at module level or inside a function)."""
    for path in (PKG / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                assert not (mod in ("train", "rins.train") or mod.endswith(".train")
                            or (node.level and not mod and any(a.name == "train" for a in node.names))), path



def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Private names (``_x``, not dunders) that ``module``'s source takes from other rins modules: by an
    import anywhere in the file, or as ``mod._x`` on a name bound to a rins module."""
    known = {_module_name(p) for p in PKG.rglob("*.py")}
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
                elif f"{mod}.{a.name}" in known:
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
    found = [f for path in PKG.rglob("*.py") if "hf_export" not in path.parts
             for f in private_imports(path.read_text(), _module_name(path), path.name == "__init__.py")]
    assert not found, found


def test_trainer_never_imports_the_studies():
    """The studies (sweep, fits, report) run the trainer, not the other way round, even through a lazy import."""
    studies = {"sweep", "scaling", "report", "study_report"}
    for path in [PKG / "train.py", *(PKG / "tasks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = {(node.module or "").rpartition(".")[2], *(a.name for a in node.names if not node.module)}
                assert not names & studies, (path, ast.unparse(node))
