"""Losses of the longtail plugin, one module per family.

- :mod:`~asklepios_longtail.losses.reweighting`: weighted CE (RW, GRW, DRW), Focal, CB, LDAM, LAS;
- :mod:`~asklepios_longtail.losses.adjustment`: Balanced Softmax, LA, LADE, VS, SEQL, GCL, Seesaw;
- :mod:`~asklepios_longtail.losses.experts`: SADE and RIDE over multi-expert logits;
- :mod:`~asklepios_longtail.losses.representation`: Center, Range and ConMix.

This package re-exports nothing: the registry reads each loss's doc from its source, which imports
this ``__init__``, so importing it must stay free of torch. Import the classes from their modules.
"""

from __future__ import annotations

__all__: list[str] = []
