"""Pure translation functions: virtual object (plain dict) + settings -> host object, and back.

No I/O and no module state here; everything the syncer decides about object *content* is in this package.
"""

from .settings import PodContext, TranslatorSettings

__all__ = ["PodContext", "TranslatorSettings"]
