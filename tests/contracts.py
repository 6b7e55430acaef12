"""An import-linter contract the library does not ship: no module imports another's private names.

``lint-imports`` (configured in ``pyproject.toml``) checks the layers between the apps with its own
``layers`` contract and private *modules* with ``private_modules``. This contract adds private
*names*: ``from metrics.selectors import _scored_reviews`` in ``metrics/views.py`` couples the view
to a helper its module never promised to keep. A module that needs it asks for a public function or
queryset instead.

A name is private when it starts with one underscore (``_helper``); dunder names (``__version__``)
are not. A module may import private names from itself only (which Python never needs) and from
its own package's ``__init__`` is not an exception: packages export public names.

Configuration options:

    - containers: the packages whose modules are checked (their imports of any module inside the
      root packages; third-party private names are not our contract).
"""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output

ROOT = Path(__file__).resolve().parents[1]


def _module_path(module: str) -> Path | None:
    """The module's source file in this checkout, found without importing it (no settings)."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


class PrivateNamesContract(Contract):
    """Kept when no module in ``containers`` imports a private name from another module."""

    type_name = "private_names"

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        roots = {str(container).split(".")[0] for container in self.containers}
        violations: list[str] = []
        for container in self.containers:
            for module in sorted(graph.find_descendants(str(container)) | {str(container)}):
                if ".migrations" in module:
                    continue
                path = _module_path(module)
                if path is None:
                    continue
                tree = ast.parse(path.read_text(), filename=str(path))
                for node in ast.walk(tree):
                    if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                        continue
                    if node.module.split(".")[0] not in roots or node.module == module:
                        continue
                    for alias in node.names:
                        if _is_private(alias.name):
                            violations.append(
                                f"{module}:{node.lineno} imports {alias.name} from {node.module}"
                            )
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            output.print_error(violation, bold=False)
            output.new_line()
        output.print("Make the name public (and keep it stable) or ask for a selector instead.")
