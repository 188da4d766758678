"""Turn on the SDK conformance kit for every longtail component."""

from __future__ import annotations

from asklepios_sdk.testing import Conformance

asklepios_conformance = Conformance("asklepios_longtail.hooks")
