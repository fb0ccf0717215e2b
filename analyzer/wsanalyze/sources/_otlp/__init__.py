"""OTLP/JSON decoding shared by every trace reader: bytes in, row tuples and problem lines out.

Tolerant by design: every ExportTraceServiceRequest / TracesData line is decoded
on its own, a bad line or span becomes a problem line ("file:line: what") and the
rest is kept. Accepted variations (OTLP/JSON spec plus what real producers write):
hex or base64 ids, int64 as string or number, enums as integers or names, absent
or empty ``parentSpanId``, every AnyValue kind, unknown fields ignored, Tempo's
``batches`` instead of ``resourceSpans``, ``instrumentationLibrarySpans``.

One concern per module, each importing only the ones above it here:

* ``codec``: JSON in and out (orjson when installed);
* ``values``: OTLP values (ids, AnyValue, attributes, int64 nanoseconds) → Python;
* ``rows``: one span → one event-table row tuple (``ROW_COLUMNS`` order);
* ``selection``: which spans a targeted read keeps (``Selection``);
* ``chunk``: what reading one file yields (``Chunk``);
* ``decompress``: a file's JSON-lines bytes, zstd stream or collector frames undone;
* ``scan``: lines that may hold an id, found in the raw bytes without decoding;
* ``read``: one file → a ``Chunk`` (``read_file``);
* ``frame``: row tuples → an event-table polars frame.

Everything but ``frame`` is free of polars, so the worker processes that decode
files build plain tuples; this ``__init__`` imports nothing for the same reason.
"""
