"""Rich-text operational transformation, op for op compatible with quill-delta 5.1.0.

Pure Python with no Django or Channels imports, so the real-time engine, the
tests and the benchmarks can all use it directly.
"""

from .delta import Delta
from .errors import DeltaError
from .parse import parse_delta
from .schema import Schema, load_schema
from .utf16 import utf16_len

__all__ = ["Delta", "DeltaError", "Schema", "load_schema", "parse_delta", "utf16_len"]
