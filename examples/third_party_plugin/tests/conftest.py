"""Switch on the asklepios conformance kit for every component of this plugin."""

asklepios_conformance = "asklepios_polyloss.hooks"
