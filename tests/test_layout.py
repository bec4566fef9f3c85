"""The shape of the package, checked on its source (AST, no imports): small functions and modules, the layering
(data, models and metrics never import the engine), argparse only in the CLI, every file write atomic through
tame/io.py, and the method documented in the repository (docs/METHOD.md), not in a file outside it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tame"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 350
SIZED = ("tame", "benchmarks")  # the folders whose functions and modules the size rules cover
BELOW_ENGINE = ("data", "models", "metrics")  # packages that must not import tame.engine
CLI_PLACES = ("tame/cli.py", "tame/commands/")  # the only places a function may take an argparse.Namespace


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def sized_modules() -> list[Path]:
    return sorted(path for folder in SIZED for path in (REPO / folder).rglob("*.py"))


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


def test_functions_are_short():
    long = [
        f"{relative(path)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
        for path in sized_modules()
        for fn in functions(parse(path))
        if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_modules_are_short():
    long = [
        f"{relative(path)} ({count} lines)"
        for path in sized_modules()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules longer than {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_data_models_metrics_never_import_the_engine():
    bad = [
        f"{relative(path)}:{line} imports {module}"
        for package in BELOW_ENGINE
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for line, module in imported_modules(path, parse(path))
        if module == "tame.engine" or module.startswith("tame.engine.")
    ]
    assert not bad, "tame/data, tame/models and tame/metrics must not import tame.engine:\n" + "\n".join(bad)


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
