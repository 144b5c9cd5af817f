"""Read an analysis spec from YAML or JSON, with errors that name the file, line and key."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from fedsurv.protocol.errors import SpecError
from fedsurv.protocol.spec import AnalysisSpec
from pydantic import BaseModel, ValidationError


def load_spec(path: str | Path) -> AnalysisSpec:
    """Load and validate a spec file (``.yaml``, ``.yml`` or ``.json``; JSON is valid YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> AnalysisSpec:
    """Parse spec text; every validation error names ``source:line`` and the key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(f"{where}: not valid YAML/JSON ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping of keys (title, survival, grid, ...)")
    try:
        return AnalysisSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            line = _line_of(node, error["loc"])
            where = f"{source}:{line}" if line else source
            key = ".".join(loc) or "(top level)"
            hint = _did_you_mean(error["loc"]) if error["type"] == "extra_forbidden" else ""
            lines.append(f"{where}: {key}: {error['msg']}{hint}")
        raise SpecError("invalid analysis spec\n  " + "\n  ".join(lines)) from None


def spec_warnings(spec: AnalysisSpec) -> list[str]:
    """Things a valid spec does that its author may not expect (printed, never fatal).

    A landmark that is not a multiple of ``grid.bin_days`` is read at the last bin end at or
    before it (:meth:`fedsurv.stats.curve.StepCurve.value_at`'s rule).
    """
    width = spec.grid.bin_days
    return [
        f"landmarks: {day} is not a multiple of grid.bin_days={width}: it is read at day "
        f"{day // width * width} (the last bin end at or before it)"
        for day in spec.landmarks if day % width
    ]


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """``"; did you mean 'landmarks'?"`` for a mistyped key, from the model's field names."""
    model: Any = AnalysisSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return ""
        model = _model_in(fields[part].annotation)
        if model is None:
            return ""
    names = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``Model``, ``Model | None`` or ``list[Model]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
