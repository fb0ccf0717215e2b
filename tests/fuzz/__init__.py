"""Fuzzers for what wsanalyze reads from users: trace files, stores, logs, and redaction."""
