"""Fixtures: one wstrace conversation, as the file store has it and as Jaeger/Tempo serve it."""

from __future__ import annotations

import json

import pytest

from .backends import FakeJaeger, FakeTempo
from .conversation import Conversation, build


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return build()


@pytest.fixture
def store(conversation, tmp_path):
    """The same spans as the embedded file store writes them (one file per service)."""
    directory = tmp_path / "store"
    directory.mkdir()
    for doc in conversation.otlp_hex():
        service = doc["resourceSpans"][0]["resource"]["attributes"]
        name = next(kv["value"]["stringValue"] for kv in service if kv["key"] == "service.name")
        (directory / f"{name}-host-1-1.0.jsonl").write_text(json.dumps(doc) + "\n")
    return directory


@pytest.fixture
def jaeger(conversation):
    with FakeJaeger(conversation.jaeger_traces()) as backend:
        yield backend


@pytest.fixture
def tempo(conversation):
    with FakeTempo(conversation.requests()) as backend:
        yield backend


@pytest.fixture
def tempo_v1(conversation):
    with FakeTempo(conversation.requests(), v2=False) as backend:
        yield backend
