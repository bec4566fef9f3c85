"""The shape of the package, checked on its source (AST, no imports): small functions and modules, the layering
(docs/ARCHITECTURE.md's dependency table, and no import circle among the modules), argparse only in the CLI, every
file write atomic through tame/io.py, and the method documented in the repository (docs/METHOD.md), not in a file
outside it."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tame"
MAX_FUNCTION_LINES = 60
MODULE_LINES_WARNING = 500  # a module this long is worth a second look (a warning, not a reason to split a concept)
MAX_MODULE_LINES = 1000  # past this a module surely holds more than one concept
SIZE_ROOTS = ("tame", "benchmarks")  # the folders whose functions and modules the size rules cover
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
CLI_PLACES = ("tame/cli.py", "tame/commands/")  # the only places a function may take an argparse.Namespace


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path, root: Path = REPO) -> str:
    return path.relative_to(root).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def imported_modules(path: Path, tree: ast.Module, root: Path = REPO) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import, function-level ones included; relative imports resolved."""
    package = relative(path, root).removesuffix(".py").split("/")
    if package[-1] == "__init__":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from tame import engine`
                yield node.lineno, f"{module}.{alias.name}"


@pytest.mark.parametrize("root", SIZE_ROOTS)
def test_functions_are_short(root):
    long = [
        f"{relative(path)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
        for path in sorted((REPO / root).rglob("*.py"))
        for fn in functions(parse(path))
        if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


@pytest.mark.parametrize("root", SIZE_ROOTS)
def test_modules_are_short(root):
    counts = {
        relative(path): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted((REPO / root).rglob("*.py"))
    }
    for path, count in counts.items():
        if count > MODULE_LINES_WARNING:
            warnings.warn(f"{path} has {count} lines: does it still hold one concept?", stacklevel=1)
    long = [f"{path} ({count} lines)" for path, count in counts.items() if count > MAX_MODULE_LINES]
    assert not long, f"modules longer than {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


# -- layering: docs/ARCHITECTURE.md's dependency table, and no import circle ----------------------------------------
def module_names(package: Path = PACKAGE, root: Path = REPO) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package`` (a package is its ``__init__.py``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = relative(path, root).removesuffix(".py").split("/")
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def module_imports(path: Path, known: Mapping[str, Path], root: Path = REPO) -> Iterator[tuple[int, str]]:
    """(line, module of ``known``) that ``path`` imports: ``from X import Y`` is the module X.Y when there is one,
    else X (whose ``__init__`` runs); function-level and ``TYPE_CHECKING`` imports count as any other."""
    tree = parse(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found = [(node.lineno, module) for _, module in imported_modules(path, ast.Module([node], []), root)]
            base, submodules = found[0][1], {module for _, module in found[1:] if module in known}
            yield from ((node.lineno, module) for module in sorted(submodules))
            if len(submodules) < len(node.names) and base in known:
                yield node.lineno, base
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names if alias.name in known)


def unit(module: str) -> str:
    """The top-level unit of a module of tame: ``tame.engine.train`` -> ``engine``, ``tame.io`` -> ``io``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def dependency_table(text: str) -> dict[str, set[str]]:
    """unit -> the units it may import, from the markdown table between the dependency-table comments."""
    start, end = "<!-- dependency table: read by tests/test_layout.py -->", "<!-- end of dependency table -->"
    assert start in text and end in text, f"{ARCHITECTURE.name} has no dependency table (between {start} and {end})"
    table = {}
    for line in text[text.index(start) : text.index(end)].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            table[re.findall(r"`([\w.]+)`", cells[0])[0]] = set(re.findall(r"`([\w.]+)`", cells[1]))
    return table


def layering_violations(table: Mapping[str, set[str]], package: Path = PACKAGE, root: Path = REPO) -> list[str]:
    """Imports across units that the table does not allow, and units that have no row."""
    known = module_names(package, root)
    units = {unit(name) for name in known}
    bad = [f"{name}: a unit of tame/ without a row in the dependency table" for name in sorted(units - set(table))]
    bad += [f"{name}: a row of the dependency table names no unit of tame/" for name in sorted(set(table) - units)]
    for name, path in known.items():
        for line, module in module_imports(path, known, root):
            if unit(module) != unit(name) and unit(module) not in table.get(unit(name), set()):
                bad.append(f"{relative(path, root)}:{line} imports {module} ({unit(name)} -> {unit(module)})")
    return bad


def test_imports_follow_the_dependency_table():
    bad = layering_violations(dependency_table(ARCHITECTURE.read_text(encoding="utf-8")))
    assert not bad, "imports the dependency table of docs/ARCHITECTURE.md does not allow:\n" + "\n".join(bad)


def import_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One circle of ``graph`` (module -> modules it imports) as [a, b, ..., a], or [] when there is none."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once every descendant is explored
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def import_graph(package: Path = PACKAGE, root: Path = REPO) -> dict[str, set[str]]:
    known = module_names(package, root)
    return {
        name: {module for _, module in module_imports(path, known, root) if module != name}
        for name, path in known.items()
    }


def test_no_import_circle_among_the_modules():
    cycle = import_cycle(import_graph())
    assert not cycle, "the modules of tame/ import each other in a circle: " + " -> ".join(cycle)


def test_only_the_cli_takes_an_argparse_namespace():
    bad = []
    for path in modules():
        if relative(path).startswith(CLI_PLACES):
            continue
        for fn in functions(parse(path)):
            arguments = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
            for argument in arguments:
                if argument.annotation is not None and "Namespace" in ast.unparse(argument.annotation):
                    bad.append(f"{relative(path)}:{fn.lineno} {fn.name}({argument.arg}: Namespace)")
    assert not bad, "argparse.Namespace parameters outside tame/cli.py and tame/commands/:\n" + "\n".join(bad)


# calls that write a file when their path argument is a real path: (dotted name or .method, index of the path)
WRITERS = {"np.save": 0, "numpy.save": 0, "np.savetxt": 0, "torch.save": 1, "os.replace": 1, "os.rename": 1}
WRITER_METHODS = {"write_text", "write_bytes", "savefig"}  # path.write_text(...), fig.savefig(path)


def _called(node: ast.AST) -> str:
    """``atomic_path`` for ``atomic_path(...)`` / ``io.atomic_path(...)``, '' for anything but a call."""
    return ast.unparse(node.func).rpartition(".")[2] if isinstance(node, ast.Call) else ""


def _temporary_names(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as NAME`` and by ``NAME = io.BytesIO()`` (in-memory buffers)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            names.update(
                item.optional_vars.id
                for item in node.items
                if _called(item.context_expr) == "atomic_path" and isinstance(item.optional_vars, ast.Name)
            )
        elif isinstance(node, ast.Assign) and _called(node.value) == "BytesIO":
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def _writes_to_temporary(target: ast.AST | None, temporaries: set[str]) -> bool:
    return isinstance(target, ast.Name) and target.id in temporaries


def _open_mode(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


def unsafe_writes(path: Path, root: Path = REPO) -> Iterator[str]:
    tree = parse(path)
    temporaries = _temporary_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in WRITERS:
            index = WRITERS[name]
            target = node.args[index] if len(node.args) > index else None
        elif isinstance(node.func, ast.Attribute) and node.func.attr in WRITER_METHODS:
            target = node.args[0] if node.func.attr == "savefig" and node.args else node.func.value
        elif name == "open" and set(_open_mode(node)) & set("wax+"):
            target = node.args[0] if node.args else None
        else:
            continue
        if not _writes_to_temporary(target, temporaries):
            yield f"{relative(path, root)}:{node.lineno} {name}(...)"


def test_every_file_write_goes_through_tame_io():
    bad = [line for path in modules() if path != PACKAGE / "io.py" for line in unsafe_writes(path)]
    assert not bad, (
        "write files with tame.io (write_text_atomic, write_bytes_atomic, save_atomic, or `with atomic_path(p) as "
        "tmp:` for savefig / np.save / Image.save):\n" + "\n".join(bad)
    )


@pytest.mark.parametrize("where", ["tame", "README.md"])
def test_the_method_is_documented_in_the_repository(where):
    """Code and README cite docs/METHOD.md; the design brief they once cited is not part of the repository."""
    root = REPO / where
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    hits = [
        f"{relative(path)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "DESIGN" in line
    ]
    assert not hits, "references to a design file outside the repository (cite docs/METHOD.md):\n" + "\n".join(hits)
    assert (REPO / "docs" / "METHOD.md").is_file()


def test_the_write_check_catches_unsafe_writes(tmp_path):
    """The checker itself: plain writes are caught, writes to an atomic_path temporary or a buffer are not."""
    source = tmp_path / "tame" / "sample.py"
    source.parent.mkdir()
    source.write_text(
        "def bad(path, fig, array):\n"
        "    path.write_text('x')\n"
        "    fig.savefig(path)\n"
        "    np.save(path, array)\n"
        "    with open(path, 'w') as handle:\n"
        "        handle.write('x')\n"
        "def good(path, fig, array):\n"
        "    with atomic_path(path) as tmp:\n"
        "        fig.savefig(tmp)\n"
        "    buffer = io.BytesIO()\n"
        "    np.save(buffer, array)\n"
        "    with open(path) as handle:\n"
        "        return handle.read()\n"
    )
    found = list(unsafe_writes(source, root=tmp_path))
    assert [line.split(" ")[0] for line in found] == [f"tame/sample.py:{n}" for n in (2, 3, 4, 5)]


def test_the_import_scan_sees_relative_and_function_level_imports(tmp_path):
    source = tmp_path / "tame" / "data" / "sample.py"
    source.parent.mkdir(parents=True)
    source.write_text("from ..engine import train\ndef f():\n    import tame.engine.optim\n    from . import lists\n")
    found = {module for _, module in imported_modules(source, parse(source), root=tmp_path)}
    assert {"tame.engine", "tame.engine.train", "tame.engine.optim", "tame.data.lists"} <= found


def _package(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "tame"


def test_the_layering_check_catches_a_forbidden_import_and_a_missing_row(tmp_path):
    package = _package(
        tmp_path,
        {
            "tame/__init__.py": "",
            "tame/errors.py": "",
            "tame/data/__init__.py": "from tame.errors import E\n",
            "tame/data/boxes.py": "def f():\n    from tame.metrics.localisation import g\n",
            "tame/metrics/__init__.py": "",
            "tame/metrics/localisation.py": "import tame.errors\n",
            "tame/viz.py": "",
        },
    )
    table = dependency_table(
        "<!-- dependency table: read by tests/test_layout.py -->\n| unit | may import |\n|---|---|\n"
        "| `tame` (root) | |\n| `errors` | |\n| `data` | `errors` |\n| `metrics` | `errors` |\n"
        "<!-- end of dependency table -->\n"
    )
    assert table == {"tame": set(), "errors": set(), "data": {"errors"}, "metrics": {"errors"}}
    assert layering_violations(table, package, tmp_path) == [
        "viz: a unit of tame/ without a row in the dependency table",
        "tame/data/boxes.py:2 imports tame.metrics.localisation (data -> metrics)",
    ]


def test_the_cycle_check_finds_a_circle_through_function_level_imports(tmp_path):
    package = _package(
        tmp_path,
        {
            "tame/__init__.py": "",
            "tame/models/__init__.py": "",
            "tame/models/registry.py": "from tame.models.preprocessing import KEYS\n",
            "tame/models/preprocessing.py": "def f():\n    from tame.models import tame\n",
            "tame/models/tame.py": "from tame.models import registry\n",
        },
    )
    graph = import_graph(package, tmp_path)
    assert graph["tame.models.preprocessing"] == {"tame.models.tame"}  # the submodule, not the package
    assert import_cycle(graph) == [
        "tame.models.preprocessing",
        "tame.models.tame",
        "tame.models.registry",
        "tame.models.preprocessing",
    ]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
