"""Convert option values without importing pydantic unless a value needs it.

Typer 0.29 converts each parameter's value through a pydantic adapter, built the first
time the parameter is processed, given a value or not; importing pydantic costs 60 to
90 ms here, more than the rest of nok's start-up. So each parameter gets a stand-in
(typer.core.build_runtime_param is the one place typer builds them) that:

* leaves a missing value as typer's own coercion does, before any adapter is used
  (typer._coercion.RuntimeParam.coerce: ``None``, or ``()`` for a repeatable one);
* converts text (a ``str`` parameter: stays as it is, typer._adapters._parse_cli_str) and
  paths (a ``pathlib.Path`` parameter: typer's own ``coerce_cli_path``, with its checks
  and messages) itself, for parameters without a parser or choices;
* hands anything else to the converter typer would have built, built then.

tests/test_help.py checks that daily commands import no pydantic; the rest of the suite
that nothing else changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer import _param_types, core
from typer._coercion import RuntimeParam, TypeDescriptor
from typer._coercion import build_runtime_param as _build


@dataclass(frozen=True)
class _Deferred(RuntimeParam):
    descriptor: TypeDescriptor
    plain: bool
    built: list[RuntimeParam] = field(default_factory=list)

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.plain and isinstance(value, str):
            if self.annotation is str:
                return value
            # A Path already, so typer's check does not build a pydantic adapter for it.
            return _param_types.coerce_cli_path(
                Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        if not self.built:
            self.built.append(_build(self.descriptor))
        return self.built[0]._coerce_value(value, param=param, ctx=ctx)


def _runtime_param(descriptor: TypeDescriptor) -> RuntimeParam:
    info = descriptor.parameter_info
    plain = (
        descriptor.file_annotation is None
        and info.parser is None
        and not descriptor.is_choice
        and (
            descriptor.annotation is str
            or (descriptor.annotation is Path and info.path_type is None)
        )
    )
    return _Deferred(
        annotation=descriptor.annotation,
        parameter_info=info,
        descriptor=descriptor,
        plain=plain,
    )


def install() -> None:
    """From now on, parameters convert their values as described above."""
    core.build_runtime_param = _runtime_param  # type: ignore[attr-defined]
