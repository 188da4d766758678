"""The core's built-in components, registered as plugin ``core`` through the ordinary hooks.

Importing this package imports nothing heavy. :mod:`asklepios.builtins.hooks` registers every
component with its params model from :mod:`asklepios.builtins.params` (pydantic and the SDK only)
and a lazy ``"asklepios.builtins.<family>:Class"`` target, so a family module (and torch) is
imported only when one of its components is built.
"""

__all__: list[str] = []
