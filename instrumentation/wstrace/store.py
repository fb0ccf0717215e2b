"""Moved to ``wstrace.file_exporter``; kept until ``wstrace.provider`` imports from there.

``wstrace.store`` read like the analyzer's compacted store (``wsanalyze.sources.store``);
the module is the span exporter that writes the trace files.
"""

from wstrace.file_exporter import FileSpanExporter

__all__ = ["FileSpanExporter"]
