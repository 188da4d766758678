"""Rules every kind shares: registration, naming, build, params schema, pickling."""

from __future__ import annotations

import json
import pickle

from asklepios_sdk.components import (
    Dataset,
    DatasetWrapper,
)
from asklepios_sdk.params import EmptyParams
from asklepios_sdk.testing._subject import _KIND_TYPES, RuleFailure, Subject, _on_cpu, _require

# -- rules every kind shares -------------------------------------------------------------------


def rule_registration(subject: Subject) -> None:
    problems = subject.entry.problems
    _require(not problems, "; ".join(problems))


def rule_build(subject: Subject) -> None:
    component = subject.build()
    kind = subject.entry.kind
    types, wanted = _KIND_TYPES[kind]
    _require(
        isinstance(component, types),
        f"the factory returned {type(component).__name__}; a {kind} must be {wanted}",
    )
    if kind == "adapter":
        _require(callable(getattr(component, "wrap", None)), "an adapter needs wrap(model)")
    if kind == "sampler":
        _require(callable(getattr(component, "set_epoch", None)), "a sampler needs set_epoch()")
    off_cpu = _on_cpu(component)
    _require(not off_cpu, f"built on a device other than ctx.device='cpu': {off_cpu[:3]}")


def rule_params_naming(subject: Subject) -> None:
    reg = subject.entry.registration
    target = reg.target_path.rpartition(":")[2].rpartition(".")[2]
    _require(
        target != "<lambda>",
        "the target is a lambda, which cannot be referenced lazily nor named in messages; "
        "register 'package.module:Class' whose constructor takes (params, ctx)",
    )
    model = reg.params_model
    if model is EmptyParams:
        return
    if target[:1].isupper():
        _require(
            model.__name__ == f"{target}Params",
            f"the params model of {target} is {model.__name__}; name it {target}Params (a "
            f"component that shares another's params: 'class {target}Params(SharedParams)' with "
            "a docstring)",
        )
    else:
        _require(
            model.__name__.endswith("Params"),
            f"the params model {model.__name__} of {target} must end in 'Params'",
        )


def rule_params_schema(subject: Subject) -> None:
    model = subject.params_model
    extra = model.model_config.get("extra")
    _require(extra == "forbid", f"{model.__name__} has extra={extra!r}; derive it from Params")
    try:
        json.dumps(model.model_json_schema())
    except Exception as err:
        raise RuleFailure(
            f"{model.__name__}.model_json_schema() failed ({type(err).__name__}: {err}); use "
            "JSON-friendly field types (numbers, strings, lists, Literal, nested Params)"
        ) from err
    params = subject.params()
    dumped = params.model_dump(mode="json")
    try:
        again = model.model_validate(json.loads(json.dumps(dumped)))
    except Exception as err:
        raise RuleFailure(
            f"{model.__name__} does not survive a JSON round trip (the saved config): {err}"
        ) from err
    _require(again == params, f"{model.__name__} changes in a JSON round trip: {dumped}")


def rule_pickle(subject: Subject) -> None:
    component = subject.build()
    targets = [("component", component)]
    if isinstance(component, DatasetWrapper):
        component.wrap(subject.dataset())
    if isinstance(component, Dataset):
        targets += [(f"split {n!r}", component.split(n)) for n in component.split_names]
    for what, target in targets:
        try:
            restored = pickle.loads(pickle.dumps(target))
        except Exception as err:
            raise RuleFailure(
                f"the {what} does not pickle ({type(err).__name__}: {err}); DataLoader workers "
                "and checkpoints need it: keep lambdas, open files and generators out of attributes"
            ) from err
        _require(type(restored) is type(target), f"the {what} unpickles as another type")
