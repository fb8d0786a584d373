"""Generation backends, one module each, named in the table `BACKENDS`.

Each module defines its `Backend` (its params checks, input checks, planner and renderer; see
`base`) and registers it with `register` where it is defined. `backend_named` imports a
module only when its backend is first asked for, so diffusers (sdxl) and the ONNX runtime
(style_transfer) stay optional. Adding a backend: write its module, add it to `BACKENDS`, and
give its name and default model to `artsim.params.generate` (the allowed values of
`generate.backend`; tests/test_layout.py keeps the two in step).
"""
from __future__ import annotations

import importlib

from artsim.generate.backends.base import Backend, ParamsProblem
from artsim.generate.prompts import PROMPT_FIELDS, check_import_template, check_template
from artsim.params import GenerateParams, ParamsError

# generate.backend -> the module that defines (and registers) it.
BACKENDS: dict[str, str] = {
    "style_transfer": "artsim.generate.backends.style_transfer",
    "sdxl": "artsim.generate.backends.sdxl",
    "import": "artsim.generate.backends.importer",
}
_REGISTERED: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Called by a backend's module at import: the table's entry becomes that object."""
    if BACKENDS.get(backend.name) != type(backend).__module__:
        raise ImportError(
            f"backend {backend.name!r} is defined in {type(backend).__module__}, "
            f"but BACKENDS names {BACKENDS.get(backend.name)!r}"
        )
    _REGISTERED[backend.name] = backend
    return backend


def backend_named(name: str) -> Backend:
    if name not in BACKENDS:
        raise ParamsError(
            f"invalid params.yaml:\n  generate.backend: unknown backend {name!r}; allowed: {', '.join(BACKENDS)}"
        )
    if name not in _REGISTERED:
        importlib.import_module(BACKENDS[name])
    return _REGISTERED[name]


def check_params(config: GenerateParams) -> Backend:
    """The checks of the generate block that belong to generate (templates) and to its backend;
    ParamsError naming every bad key, before any work. Returns the backend."""
    backend = backend_named(config.backend)
    problems = [*_template_problems(config), *backend.check_params(config)]
    if problems:
        raise ParamsError(
            "\n".join(["invalid params.yaml:", *(f"  generate.{key}: {message}" for key, message in problems)])
        )
    return backend


def _template_problems(config: GenerateParams) -> list[ParamsProblem]:
    # Every backend's templates are checked, used or not: a typo surfaces before a switch of backend.
    checks = (
        ("prompt", lambda t: check_template(t, PROMPT_FIELDS)),
        ("negative_prompt", lambda t: check_template(t, PROMPT_FIELDS)),
        ("import_template", check_import_template),
    )
    problems = []
    for key, check in checks:
        try:
            check(getattr(config, key))
        except ValueError as exc:
            problems.append((key, f"{exc} (got {getattr(config, key)!r})"))
    return problems
