"""The former spelling of the model constructors, kept working with a ``DeprecationWarning``.

The models take their networks as modules (``SVGAE(encoder)``, ``SVAE(encoder, decoder)``), as
torch_geometric's ``VGAE(encoder, decoder=None)`` does. They used to build a fixed network from sizes
(``SVGAE(in_channels, hidden_channels, latent_dim, ...)``, ``SVAE(latent_dim, hidden, ...)``); that network is
now the named constructor (``SVGAE.gcn``, ``SVAE.mlp``, with the same arguments in the same order), and a call
in the former spelling (an integer where the encoder goes) is routed to it with a warning that names it.
"""

from __future__ import annotations

import warnings

from torch import nn


class LegacySizes(type(nn.Module)):  # type: ignore[misc]  # nn.Module's metaclass, whatever torch makes it
    """Metaclass: ``cls(int, ...)`` (or ``cls(<legacy_first>=int, ...)``) -> ``cls.<legacy_builder>(...)``
    with a ``DeprecationWarning``; any other call constructs the model as usual."""

    legacy_builder: str
    legacy_first: str

    def __call__(cls, *args, **kwargs):
        first = args[0] if args else kwargs.get(cls.legacy_first)
        if isinstance(first, int) and not isinstance(first, bool):
            builder = cls.legacy_builder
            warnings.warn(
                f"{cls.__name__}({cls.legacy_first}, ...) is deprecated: the model now takes its networks as "
                f"modules. For the same built-in network (same parameters for the same seed) use "
                f"{cls.__name__}.{builder}({cls.legacy_first}, ...) with the same arguments; for your own network "
                f"{cls.__name__}({'encoder, decoder' if cls.legacy_first == 'latent_dim' else 'encoder'}, ...).",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(cls, builder)(*args, **kwargs)
        return super().__call__(*args, **kwargs)
