"""The conformance kit: checks every component a plugin registers against the SDK contracts.

Importing this package is cheap (no torch); the checks load on first use. A plugin's test suite
switches the kit on with one line in ``tests/conftest.py``::

    asklepios_conformance = "asklepios_myplugin.hooks"

See ``sdk/README.md`` ("Conformance kit") for configuration.
"""
