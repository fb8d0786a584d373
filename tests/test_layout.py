"""The package layout: one package per dvc.yaml stage, imports going downward only
(core <- params <- stages in DAG order <- app), no import cycle, short modules; and tests/
mirroring it (tests/<package>/test_<module>.py).

Imports are read from the source with `ast`, at module level and inside functions alike (an
import inside a function to dodge a cycle is still an arrow). Imports under
`if TYPE_CHECKING:` are left out: they never run. The checks are plain functions, run on
the real tree and on small synthetic graphs that break each rule, so a broken checker fails too.
"""
from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "artsim"
# Lowest first: a package may import only from its own layer or below. index sits below the training
# stages and evaluate: it needs only core and learn (the model folder), so evaluate may rank through it.
LAYERS = [
    "core",
    "params",
    "ingest",
    "generate",
    "describe",
    "score",
    "learn",
    "index",
    "finetune",
    "siamese",
    "evaluate",
    "report",
    "export",
    "app",
]
MAX_LINES = 320
# What `import artsim` may load: the package must stay light, every stage and the API import it.
LIGHT_MODULES = {"__future__", "importlib", "typing"}
# tests/ mirrors artsim/: a folder per package, and beside them these (no package of artsim has their names).
TEST_FOLDERS_BESIDE_PACKAGES = {"stages", "e2e", "support"}
TESTS_AT_THE_TOP = {"test_layout.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (imports for annotations only)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def imported_modules(source: str, name: str, is_package: bool) -> set[str]:
    """The absolute names of the modules `source` (module `name`) imports, anywhere in it.
    `from a import b` counts as `a.b` too (b may be a module); callers keep the names that exist."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    """artsim module -> the artsim modules it imports (the deepest existing name of each import)."""
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        imported = imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        graph[name] = {target for target in imported if target in files and target != name}
    return graph


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Arrows from a package to a higher layer, as 'a -> b'."""
    wrong = []
    for source, targets in graph.items():
        for target in targets:
            low, high = layer_of(source), layer_of(target)
            if low and high and LAYERS.index(high) > LAYERS.index(low):
                wrong.append(f"{source} -> {target}")
    return sorted(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a path [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


# --- the checker on synthetic graphs: each rule catches what it is for ---------------------------

def test_the_checker_finds_an_upward_import_and_a_cycle():
    old_layout = {  # what main had: params imported generate; importer <-> run through a function-level import
        "artsim.params": {"artsim.generate", "artsim.core.cache_dirs"},
        "artsim.generate.backends.importer": {"artsim.generate.run"},
        "artsim.generate.run": {"artsim.generate.backends.importer"},
        "artsim.core.cache_dirs": set(),
    }
    assert upward_imports(old_layout) == ["artsim.params -> artsim.generate"]
    assert find_cycle(old_layout) == [
        "artsim.generate.backends.importer",
        "artsim.generate.run",
        "artsim.generate.backends.importer",
    ]
    assert upward_imports({"artsim.app.cli": {"artsim.core"}, "artsim.evaluate.run": {"artsim.score.pairs"}}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_function_level_imports_count_and_type_checking_ones_do_not():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from artsim.app import api\n"
        "def later():\n    from artsim.generate import run\n    import artsim.score.pairs\n"
        "from . import sibling\n"
    )
    found = imported_modules(source, "artsim.params.generate", is_package=False)
    assert {"artsim.generate.run", "artsim.score.pairs", "artsim.params.sibling"} <= found
    assert "artsim.app.api" not in found and "artsim.app" not in found


# --- the real tree ------------------------------------------------------------------------------

def test_every_package_is_a_layer():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages <= set(LAYERS), f"packages outside LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_go_downward_only():
    assert upward_imports(project_graph()) == []


def test_no_import_cycle_among_modules():
    assert find_cycle(project_graph()) == []


def test_the_top_package_imports_nothing_heavy():
    source = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    roots = {name.split(".")[0] for name in imported_modules(source, "artsim", is_package=True)}
    assert roots <= LIGHT_MODULES, sorted(roots - LIGHT_MODULES)


def test_every_module_is_short():
    long = {str(path.relative_to(REPO_ROOT)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_has_its_package_among_its_deps(stage):
    assert (PACKAGE / stage / "__init__.py").is_file(), f"stage {stage} has no package artsim/{stage}"
    assert f"artsim/{stage}" in STAGES[stage]["deps"]


def test_params_allow_exactly_the_registered_backends():
    from artsim.generate.backends import BACKENDS
    from artsim.params.generate import DEFAULT_MODELS, BackendName

    assert list(typing.get_args(BackendName)) == list(BACKENDS) == list(DEFAULT_MODELS)


def _spelling(literals: tuple[str, ...], owner: Path) -> list[str]:
    """The project modules other than `owner` whose code holds one of `literals`."""
    files = [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "stages").glob("*.py")]
    return sorted(str(path.relative_to(REPO_ROOT)) for path in files
                  if path != owner and any(text in path.read_text(encoding="utf-8") for text in literals))


def test_workspace_paths_are_spelled_only_in_core_layout():
    # dvc.yaml spells them too (DVC needs literals); tests/params/test_base.py checks that
    # layout.DVC_OUTPUTS is exactly what dvc.yaml declares.
    from artsim.core import layout

    names = (layout.MANIFEST, layout.DESCRIPTORS_TABLE.name, layout.PAIRS_TABLE.name, layout.VERDICT.name)
    literal = ("Path(\"data/", "Path(\"models/", "Path(\"metrics/", *(f'"{name}"' for name in names))
    assert not _spelling(literal, PACKAGE / "core" / "layout.py")


def test_model_folder_file_names_are_spelled_only_in_learn_model_folder():
    from artsim.learn.model_folder import CARD_FILE, WEIGHTS_FILE

    assert not _spelling((f'"{WEIGHTS_FILE}"', f'"{CARD_FILE}"'), PACKAGE / "learn" / "model_folder.py")


def test_a_backend_module_is_imported_only_when_asked_for():
    import subprocess
    import sys

    probe = ("import sys\nfrom artsim.generate.backends import backend_named\nimport artsim.generate.run\n"
             "assert backend_named('style_transfer').name == 'style_transfer'\n"
             "print(sorted(m for m in sys.modules if m.startswith(('diffusers', 'artsim.generate.backends.'))))")
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "diffusers" not in loaded and "backends.sdxl" not in loaded and "backends.importer" not in loaded
    assert "backends.style_transfer" in loaded


def test_an_unknown_backend_name_fails_naming_the_allowed_ones():
    from artsim.generate.backends import backend_named
    from artsim.params import ParamsError

    with pytest.raises(
        ParamsError, match=r"generate\.backend: unknown backend 'dall-e'; allowed: style_transfer, sdxl, import"
    ):
        backend_named("dall-e")


# --- the tests mirror the code ------------------------------------------------------------------

def misplaced_tests(tests: Path, package: Path) -> list[str]:
    """What breaks tests/<package>/test_<module>[_<aspect>].py, where <package> is a package of artsim and
    <module> one of its modules (or the package itself, for its __init__): test files elsewhere, folders
    that name no package, folders without __init__.py (duplicate file names need packages)."""
    problems = [path.name for path in tests.glob("test_*.py") if path.name not in TESTS_AT_THE_TOP]
    for folder in sorted(path for path in tests.iterdir() if path.is_dir() and path.name != "__pycache__"):
        if not (folder / "__init__.py").is_file():
            problems.append(f"{folder.name}/ has no __init__.py")
        if folder.name in TEST_FOLDERS_BESIDE_PACKAGES:
            continue
        if not (package / folder.name / "__init__.py").is_file():
            problems.append(f"{folder.name}/ names no artsim package")
            continue
        modules = {folder.name} | {path.stem for path in (package / folder.name).rglob("*.py")}
        named = {f"test_{name}" for name in modules}
        problems += [f"{folder.name}/{path.name}" for path in sorted(folder.glob("test_*.py"))
                     if not any(path.stem == stem or path.stem.startswith(f"{stem}_") for stem in named)]
    return problems


def test_every_test_module_sits_in_the_folder_of_the_package_it_tests():
    assert misplaced_tests(REPO_ROOT / "tests", PACKAGE) == []


def test_a_test_outside_the_mirror_is_found(tmp_path):
    for name in ["artsim/core/__init__.py", "artsim/core/images.py", "tests/core/__init__.py",
                 "tests/core/test_images.py", "tests/core/test_images_modes.py", "tests/core/test_core.py",
                 "tests/core/test_pictures.py", "tests/nowhere/__init__.py", "tests/e2e/test_pipeline.py",
                 "tests/test_layout.py", "tests/test_stray.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert misplaced_tests(tmp_path / "tests", tmp_path / "artsim") == [
        "test_stray.py", "core/test_pictures.py", "e2e/ has no __init__.py", "nowhere/ names no artsim package"]


def branches_on_a_ranking_name(source: str, names: set[str]) -> list[int]:
    """Lines that compare something with a ranking's name (`x == "phash"`, `x in ("model", ...)`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            constants = [c for c in [node.left, *node.comparators] for c in ([c] if isinstance(c, ast.Constant) else
                         getattr(c, "elts", []))]
            if any(isinstance(c, ast.Constant) and c.value in names for c in constants):
                found.append(node.lineno)
    return found


def test_the_checker_finds_a_branch_on_a_ranking_name():
    assert branches_on_a_ranking_name("if by == 'phash':\n    pass\nok = by in RANKINGS\n", {"phash"}) == [1]
    assert branches_on_a_ranking_name("x = name in ('model', 'fused')\n", {"model"}) == [1]


def test_what_varies_per_ranking_is_decided_only_in_its_registry():
    # The rankings (artsim.index.query.RANKINGS) are classes; the CLI, the service and evaluate look them up.
    from artsim.index import RANKING_NAMES

    registry = PACKAGE / "index" / "query.py"
    where_ranked = [path for package in ("app", "index", "evaluate") for path in (PACKAGE / package).rglob("*.py")]
    branching = {str(path.relative_to(REPO_ROOT)): lines for path in where_ranked if path != registry
                 and (lines := branches_on_a_ranking_name(path.read_text(encoding="utf-8"), set(RANKING_NAMES)))}
    assert not branching, f"a ranking chosen by its name outside its registry: {branching}"


def test_the_serving_side_keeps_its_floors():
    # The index knows no model file, verdict or front end (it is given embed/head/mark); the shapes of
    # the answers (render) and the command's defaults (limits) import no web framework.
    graph = project_graph()
    index_imports = {target for name, targets in graph.items() if name.startswith("artsim.index") for target in targets}
    assert not {t for t in index_imports if t.startswith(("artsim.app", "artsim.evaluate"))}
    for light in ("artsim.app.render", "artsim.app.limits"):
        assert not {t for t in imported_modules((PACKAGE / "app" / f"{light.rsplit('.', 1)[1]}.py").read_text(),
                                                light, is_package=False) if t.startswith(("fastapi", "starlette"))}
