"""The core's built-in components, registered as plugin ``core`` through the ordinary hooks.

Importing this package imports nothing heavy; :mod:`asklepios.builtins.hooks` imports each family
module inside the registration hook that needs it.
"""

__all__: list[str] = []
