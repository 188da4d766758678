"""The plugin-facing surface: every public name resolves, none disappears, import stays light.

Removing or renaming a name in ``asklepios_sdk.__all__`` breaks plugins; the policy
(CONTRIBUTING.md, "Compatibility") is to deprecate for one minor release first. This test keeps
the surface honest: a name may be added (then add it here and bump ``PLUGIN_API``'s minor), never
silently dropped.
"""

from __future__ import annotations

import subprocess
import sys

import asklepios_sdk
import asklepios_sdk.testing

SURFACE_1_0 = {
    "PLUGIN_API",
    "PROJECT_NAME",
    "Adapter",
    "AsklepiosError",
    "AsklepiosWarning",
    "Backbone",
    "Batch",
    "BatchTransform",
    "BuildContext",
    "Citation",
    "ComponentError",
    "ComponentFactory",
    "DataFacts",
    "Dataset",
    "DatasetWrapper",
    "EmptyParams",
    "Evaluator",
    "Loss",
    "LossOutput",
    "Params",
    "Register",
    "RunState",
    "SampleTransform",
    "ShardedSampler",
    "StepContext",
    "Trainer",
    "WeightsError",
    "WeightsReport",
    "WeightsSpec",
    "__version__",
    "example_batch",
    "hookimpl",
    "load_weights",
    "read_citation",
}

SURFACE_1_1 = SURFACE_1_0 | {"AsklepiosDeprecationWarning"}
"""SDK 0.2: the warning a deprecated form emits (filter it with ``-W error::...``)."""

SURFACE_1_2 = SURFACE_1_1 | {"SequenceCollate", "SequenceEvaluator", "split_collate"}
"""Variable-length sequences: the collate a split declares, and evaluators that gather items."""

SURFACE_1_3 = SURFACE_1_2 | {
    "GenerationCollate",
    "GenerativeBackbone",
    "ModelFingerprint",
    "TextEvaluator",
}
"""Generative models under test: the backbone contract, the question collate, text evaluators."""

SURFACE_1_4 = SURFACE_1_3 | {"ConfigConflictError", "DatasetGenerator", "GeneratedSplit"}
"""Generated datasets: the generator contract and the split that reads a generated folder."""

SYNTHESIS_1_4 = {
    "GENERATED_EXTRA",
    "GENERATION_MODELS_EXTRA",
    "RESERVED_ITEM_KEYS",
    "DatasetGenerator",
    "GeneratedSplit",
    "GenerationPending",
    "check_item",
    "generated_dir",
    "item_path",
    "read_generated",
    "read_manifest",
}

GENERATION_1_3 = {
    "GenerationCollate",
    "GenerativeBackbone",
    "Message",
    "ModelFingerprint",
    "TextEvaluator",
    "answer_conversations",
    "conversation",
    "example_generation_batch",
    "image_digest",
    "user_turns",
}

SEQUENCES_1_2 = {
    "IGNORE_INDEX",
    "ItemTable",
    "SequenceCollate",
    "SequenceEvaluator",
    "batch_index",
    "example_sequence_batch",
    "pad_sequences",
    "split_collate",
    "unpad",
}

TESTING_1_0 = {
    "DEFAULT_FACTS",
    "HEAVY_MODULES",
    "RULES",
    "Conformance",
    "ConformanceError",
    "Override",
    "Report",
    "TinyBackbone",
    "TinyDataset",
    "check_plugin",
    "default_context",
    "survival_facts",
}


TESTING_1_1 = TESTING_1_0 | {"COMPONENT_TABLE_HEADER", "component_table_rows"}

IO_1_1 = {"write_atomic", "write_dir_atomic"}
"""``asklepios_sdk.io``, new in SDK 0.2: the one way to write a file or folder atomically."""


def test_no_public_name_was_removed_and_all_resolve() -> None:
    assert set(asklepios_sdk.__all__) >= SURFACE_1_4
    assert set(asklepios_sdk.testing.__all__) >= TESTING_1_1
    for name in asklepios_sdk.__all__:
        assert getattr(asklepios_sdk, name) is not None
    for name in asklepios_sdk.testing.__all__:
        assert getattr(asklepios_sdk.testing, name) is not None


def test_plugin_api_is_major_minor() -> None:
    major, minor = (int(part) for part in asklepios_sdk.PLUGIN_API.split("."))
    assert (major, minor) >= (1, 4)


def test_the_generation_module_is_public() -> None:
    import asklepios_sdk.generation

    assert set(asklepios_sdk.generation.__all__) >= GENERATION_1_3
    for name in asklepios_sdk.generation.__all__:
        assert getattr(asklepios_sdk.generation, name) is not None
    assert asklepios_sdk.GenerativeBackbone is asklepios_sdk.generation.GenerativeBackbone


def test_the_synthesis_module_is_public() -> None:
    import asklepios_sdk.synthesis

    assert set(asklepios_sdk.synthesis.__all__) >= SYNTHESIS_1_4
    for name in asklepios_sdk.synthesis.__all__:
        assert getattr(asklepios_sdk.synthesis, name) is not None
    assert asklepios_sdk.DatasetGenerator is asklepios_sdk.synthesis.DatasetGenerator


def test_the_sequences_module_is_public() -> None:
    import asklepios_sdk.sequences

    assert set(asklepios_sdk.sequences.__all__) >= SEQUENCES_1_2
    for name in asklepios_sdk.sequences.__all__:
        assert getattr(asklepios_sdk.sequences, name) is not None
    assert asklepios_sdk.SequenceCollate is asklepios_sdk.sequences.SequenceCollate


def test_the_io_module_is_public_and_light() -> None:
    import asklepios_sdk.io

    assert set(asklepios_sdk.io.__all__) >= IO_1_1
    for name in asklepios_sdk.io.__all__:
        assert callable(getattr(asklepios_sdk.io, name))
    code = (
        "import sys; from asklepios_sdk.io import write_atomic, write_dir_atomic;"
        "print(sorted(m for m in ('torch', 'numpy', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_deprecation_warning_is_an_asklepios_warning_and_a_deprecation_warning() -> None:
    from asklepios_sdk.errors import AsklepiosDeprecationWarning

    assert asklepios_sdk.AsklepiosDeprecationWarning is AsklepiosDeprecationWarning
    assert issubclass(AsklepiosDeprecationWarning, asklepios_sdk.AsklepiosWarning)
    assert issubclass(AsklepiosDeprecationWarning, DeprecationWarning)


def test_component_table_header_is_the_table_the_rows_belong_to() -> None:
    header, rule = asklepios_sdk.testing.COMPONENT_TABLE_HEADER
    assert header == "| component | kind | what it does |" and rule == "|---|---|---|"


def test_importing_the_sdk_and_its_hook_marker_imports_no_torch() -> None:
    code = (
        "import sys, asklepios_sdk, asklepios_sdk.testing, asklepios_sdk.citation;"
        "from asklepios_sdk import hookimpl, Params, WeightsSpec, DataFacts;"
        "print(sorted(m for m in ('torch', 'numpy', 'torchmetrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_hook_marker_builds_no_pydantic_models() -> None:
    """A hook module's ``from asklepios_sdk import hookimpl`` stays cheap for plugin listings."""
    code = (
        "import sys; from asklepios_sdk import hookimpl;"
        "from asklepios_sdk.registration import REGISTRATION_HOOKS;"
        "print('pydantic' in sys.modules, len(REGISTRATION_HOOKS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "8"]
