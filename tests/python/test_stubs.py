"""The type stubs (shmbus/_shmbus.pyi) match the native core: every public class, method and
attribute the package has at run time is in the stubs, and the stubs promise nothing the
package lacks, so that an editor or mypy sees the API as it is."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import shmbus
from shmbus import _shmbus

STUBS = Path(_shmbus.__file__).with_name("_shmbus.pyi")


def stub_classes() -> dict[str, set[str]]:
    """Each class of the stubs with the public names it declares, its stub bases' included."""
    tree = ast.parse(STUBS.read_text())
    declared: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = set()
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.add(item.target.id)
        declared[node.name] = names
        bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def all_names(name: str) -> set[str]:
        names = set(declared.get(name, set()))
        for base in bases.get(name, []):
            names |= all_names(base)
        return names

    return {name: {n for n in all_names(name) if not n.startswith("_")} for name in declared}


def stub_functions() -> set[str]:
    tree = ast.parse(STUBS.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and not node.name.startswith("_")}


def runtime_classes() -> dict[str, type]:
    return {name: getattr(shmbus, name) for name, obj in vars(_shmbus).items()
            if isinstance(obj, type) and not name.startswith("_")}


def test_every_class_of_the_native_core_has_its_stub_and_no_more() -> None:
    assert set(runtime_classes()) == {n for n in stub_classes() if not n.startswith("_")}


def test_each_class_has_exactly_the_members_its_stub_declares() -> None:
    stubs = stub_classes()
    for name, cls in runtime_classes().items():
        at_run_time = {n for n in dir(cls) if not n.startswith("_")}
        assert at_run_time == stubs[name], (
            f"{name}: missing from the stub {sorted(at_run_time - stubs[name])}, "
            f"in the stub only {sorted(stubs[name] - at_run_time)}")


def test_the_module_functions_have_their_stubs() -> None:
    at_run_time = {name for name, obj in vars(_shmbus).items()
                   if inspect.isbuiltin(obj) and not name.startswith("_")}
    assert at_run_time == stub_functions()
