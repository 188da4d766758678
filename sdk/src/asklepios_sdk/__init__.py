"""asklepios-sdk: the one module a plugin imports.

Importing this package is cheap: ``hookimpl``, the context types, the errors and the registration
types load at once; the params models (pydantic), the citation helper and the torch-based
component bases load on first attribute access, so a plugin's hook module can
``from asklepios_sdk import hookimpl`` without importing torch or building pydantic models, and
``asklepios plugins list`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from asklepios_sdk._markers import PROJECT_NAME, hookimpl
from asklepios_sdk.context import BuildContext, DataFacts
from asklepios_sdk.errors import (
    AsklepiosDeprecationWarning,
    AsklepiosError,
    AsklepiosWarning,
    ComponentError,
    ConfigConflictError,
    WeightsError,
)
from asklepios_sdk.registration import ComponentFactory, Register

if TYPE_CHECKING:
    from asklepios_sdk.citation import Citation, read_citation
    from asklepios_sdk.components import (
        Adapter,
        Backbone,
        Batch,
        BatchTransform,
        Dataset,
        DatasetWrapper,
        Evaluator,
        Loss,
        LossOutput,
        RunState,
        SampleTransform,
        ShardedSampler,
        StepContext,
        Trainer,
        example_batch,
    )
    from asklepios_sdk.generation import (
        GenerationCollate,
        GenerativeBackbone,
        ModelFingerprint,
        TextEvaluator,
    )
    from asklepios_sdk.params import EmptyParams, Params, WeightsSpec
    from asklepios_sdk.sequences import SequenceCollate, SequenceEvaluator, split_collate
    from asklepios_sdk.synthesis import DatasetGenerator, GeneratedSplit
    from asklepios_sdk.weights import WeightsReport, load_weights

PLUGIN_API = "1.5"
"""Version of the plugin-facing surface; see CONTRIBUTING.md for the compatibility policy.

1.1 (SDK 0.2): lazy ``register(name, "package.module:Class", ClassParams)`` targets,
``AsklepiosDeprecationWarning``, ``asklepios_sdk.io`` and the kit's README table helpers.
1.2: variable-length sequences (``asklepios_sdk.sequences``: ``SequenceCollate``,
``SequenceEvaluator``, ``split_collate``; a split declares its collate as ``collate_fn``).
1.3: generative models under test (``asklepios_sdk.generation``: ``GenerativeBackbone``,
``GenerationCollate``, ``ModelFingerprint``, ``TextEvaluator``); the engine caches their answers.
1.4: generated datasets (``asklepios_sdk.synthesis``: ``DatasetGenerator``, ``GeneratedSplit``);
a stage with ``generate:`` writes one item per request, resumable item by item;
``ConfigConflictError`` for components whose params contradict each other.
1.5: ``Dataset.files`` may add where each file is listed (``(row, path, "labels.csv line 17")``);
``ItemTable.flat``/``ItemTable.rows``, every item's rows end to end for vectorised evaluators.
"""

_LAZY = {
    name: "asklepios_sdk.components"
    for name in (
        "Adapter",
        "Backbone",
        "Batch",
        "BatchTransform",
        "Dataset",
        "DatasetWrapper",
        "Evaluator",
        "Loss",
        "LossOutput",
        "RunState",
        "SampleTransform",
        "ShardedSampler",
        "StepContext",
        "Trainer",
        "example_batch",
    )
}
_LAZY.update(
    {
        "Citation": "asklepios_sdk.citation",
        "read_citation": "asklepios_sdk.citation",
        "EmptyParams": "asklepios_sdk.params",
        "GenerationCollate": "asklepios_sdk.generation",
        "GenerativeBackbone": "asklepios_sdk.generation",
        "DatasetGenerator": "asklepios_sdk.synthesis",
        "GeneratedSplit": "asklepios_sdk.synthesis",
        "ModelFingerprint": "asklepios_sdk.generation",
        "TextEvaluator": "asklepios_sdk.generation",
        "Params": "asklepios_sdk.params",
        "WeightsSpec": "asklepios_sdk.params",
        "SequenceCollate": "asklepios_sdk.sequences",
        "SequenceEvaluator": "asklepios_sdk.sequences",
        "split_collate": "asklepios_sdk.sequences",
        "WeightsReport": "asklepios_sdk.weights",
        "load_weights": "asklepios_sdk.weights",
    }
)

__all__ = [
    "PLUGIN_API",
    "PROJECT_NAME",
    "Adapter",
    "AsklepiosDeprecationWarning",
    "AsklepiosError",
    "AsklepiosWarning",
    "Backbone",
    "Batch",
    "BatchTransform",
    "BuildContext",
    "Citation",
    "ComponentError",
    "ComponentFactory",
    "ConfigConflictError",
    "DataFacts",
    "Dataset",
    "DatasetGenerator",
    "DatasetWrapper",
    "EmptyParams",
    "Evaluator",
    "GeneratedSplit",
    "GenerationCollate",
    "GenerativeBackbone",
    "Loss",
    "LossOutput",
    "ModelFingerprint",
    "Params",
    "Register",
    "RunState",
    "SampleTransform",
    "SequenceCollate",
    "SequenceEvaluator",
    "ShardedSampler",
    "StepContext",
    "TextEvaluator",
    "Trainer",
    "WeightsError",
    "WeightsReport",
    "WeightsSpec",
    "__version__",
    "example_batch",
    "hookimpl",
    "load_weights",
    "read_citation",
    "split_collate",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        try:
            return version("asklepios-sdk")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0+unknown"
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asklepios_sdk' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
