"""Compare numbers our agents compute with golden values recorded from a reference implementation.

A golden file (tests/golden/<agent>.json) holds, besides the numbers:
  "regenerate": the command that rewrites it (tools/golden/make_<agent>.py ...),
  "parameters": {parameter name: shape} of the model the numbers came from,
  "values": {quantity: float or (nested) list of floats}.
A model whose parameters no longer have the recorded names or shapes (an agent changed without
regenerating the file) fails the shape check first, naming the tensor, instead of failing later on
numbers that cannot agree.
"""

import json
import math
from pathlib import Path

import torch

Number = float | int
Value = Number | list

DEFAULT_RTOL = 1e-4
# Below this magnitude a relative tolerance is meaningless (a gradient mean that is 0 up to rounding).
DEFAULT_ATOL = 1e-7


def load_golden(golden_path: str | Path) -> dict:
    return json.loads(Path(golden_path).read_text())


def _regenerate_hint(agent_name: str, golden: dict) -> str:
    command = golden.get("regenerate") or f"python tools/golden/make_{agent_name}.py"
    return f"regenerate the golden file with: {command}"


def parameter_shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    """{name: shape} of every parameter, the form golden files store."""
    return {name: list(param.shape) for name, param in module.named_parameters()}


def assert_shapes_match(agent_name: str, shapes: dict[str, list[int]], golden_path: str | Path) -> None:
    """Fail, naming the first tensors that differ, when the model no longer has the golden file's shapes."""
    golden = load_golden(golden_path)
    recorded = {name: list(shape) for name, shape in golden["parameters"].items()}
    current = {name: list(shape) for name, shape in shapes.items()}
    problems = [
        f"{name}: golden {recorded[name]}, model {current[name]}"
        for name in recorded
        if name in current and recorded[name] != current[name]
    ]
    problems += [
        f"{name}: in the golden file, absent from the model" for name in recorded if name not in current
    ]
    problems += [
        f"{name}: in the model, absent from the golden file" for name in current if name not in recorded
    ]
    if problems:
        shown = "\n  ".join(problems[:10]) + (
            f"\n  ... {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise AssertionError(
            f"{agent_name}: the model's parameters differ from those {golden_path} was recorded with "
            f"(the agent changed without regenerating it):\n  {shown}\n{_regenerate_hint(agent_name, golden)}"
        )


def assert_same_settings(
    agent_name: str, settings: dict, golden_path: str | Path, key: str = "config"
) -> None:
    """Fail when a setting the golden file records differs from the one the test builds with now (a changed
    default changes the numbers). Only settings both have are compared: one added or removed since changes
    the numbers only through others, or else the values' comparison fails."""
    golden = load_golden(golden_path)
    recorded = golden[key]
    problems = [
        f"{name}: golden {recorded[name]!r}, now {settings[name]!r}"
        for name in recorded
        if name in settings and recorded[name] != settings[name]
    ]
    if problems:
        raise AssertionError(
            f"{agent_name}: settings differ from those {golden_path} was recorded with:\n  "
            + "\n  ".join(problems)
            + f"\n{_regenerate_hint(agent_name, golden)}"
        )


def assert_same_weights(
    agent_name: str, sums: dict[str, float], golden_path: str | Path, rtol: float = 1e-6
) -> None:
    """Fail when the rebuilt weights are not those the golden values came from (golden "weight_abs_sums":
    sum of |w| per parameter), e.g. after a change of initialisation or of the order modules are built in."""
    golden = load_golden(golden_path)
    recorded = golden["weight_abs_sums"]
    problems = [
        f"{name}: sum |w| golden {recorded[name]:.8g}, rebuilt {sums[name]:.8g}"
        for name in recorded
        if name in sums and abs(sums[name] - recorded[name]) > rtol * abs(recorded[name]) + 1e-12
    ]
    if problems:
        raise AssertionError(
            f"{agent_name}: the weights built from the recorded seed differ from those {golden_path} was "
            f"computed with (the initialisation changed):\n  "
            + "\n  ".join(problems[:10])
            + f"\n{_regenerate_hint(agent_name, golden)}"
        )


def _flatten(value: Value, prefix: str) -> dict[str, float]:
    if isinstance(value, list | tuple):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: float(value)}


def assert_matches(
    agent_name: str,
    ours: dict[str, Value],
    golden_path: str | Path,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    looser: dict[str, tuple[float, str] | tuple[float, float, str]] | None = None,
) -> None:
    """Compare every quantity with the golden file's "values", |ours - golden| <= atol + rtol * |golden|.

    `looser` maps a quantity to (its rtol, the reason it needs one) or (its rtol, its atol, the reason): a looser
    tolerance is never silent.
    Every golden quantity must be present in `ours` and every quantity in `ours` must have a golden value.
    """
    golden = load_golden(golden_path)
    expected: dict[str, Value] = golden["values"]
    looser = looser or {}
    problems = [
        f"{key}: golden value recorded, not computed by the test" for key in expected if key not in ours
    ]
    problems += [f"{key}: computed by the test, no golden value" for key in ours if key not in expected]
    for key in expected:
        if key not in ours:
            continue
        key_rtol = looser[key][0] if key in looser else rtol
        key_atol = looser[key][1] if key in looser and len(looser[key]) == 3 else atol
        want, got = _flatten(expected[key], key), _flatten(ours[key], key)
        if want.keys() != got.keys():
            problems.append(f"{key}: golden has {len(want)} numbers, ours {len(got)}")
            continue
        for item, target in want.items():
            value = got[item]
            if not math.isfinite(value) or abs(value - target) > key_atol + key_rtol * abs(target):
                relative = abs(value - target) / max(abs(target), 1e-30)
                problems.append(
                    f"{item}: ours {value:.8g}, golden {target:.8g} (off by {value - target:.3g}, "
                    f"relative {relative:.3g} > rtol {key_rtol:g}, atol {key_atol:g})"
                )
    if problems:
        raise AssertionError(
            f"{agent_name}: {len(problems)} quantities differ from {golden_path}:\n  "
            + "\n  ".join(problems)
            + f"\nIf the change is intended, {_regenerate_hint(agent_name, golden)}"
        )
