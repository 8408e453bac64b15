"""The pole registry: poles by the code painted on them, shared through Redis.

What other packages use (stable):

* :class:`PoleRegistry` (``registry``): a city's poles in Redis: ``store``, ``get``, ``count``,
  ``load_index``, ``follow``.
* :class:`PoleIndex` (``index``): in-process lookups: ``get`` (exact), ``resolve`` (what a
  caller read out, with ranked candidates), ``refresh_if_changed``, ``follow``.
* :class:`Pole`, :class:`Candidate`, :class:`Resolution` (``model``).
* :func:`normalize`, :func:`parse_shenzhen`, :class:`CodeError` (``codes``).
* :func:`generate_city` (``city``): the Shenzhen demo city; :func:`read_inventory`
  (``inventory``): real CSV/GeoJSON inventories; :func:`grid_of` (``grids``).
"""

from polewatch.poles.codes import CodeError, normalize, parse_shenzhen
from polewatch.poles.grids import grid_of
from polewatch.poles.index import PoleIndex
from polewatch.poles.model import Candidate, Pole, Resolution
from polewatch.poles.registry import PoleRegistry

__all__ = [
    "Candidate",
    "CodeError",
    "Pole",
    "PoleIndex",
    "PoleRegistry",
    "Resolution",
    "grid_of",
    "normalize",
    "parse_shenzhen",
]
