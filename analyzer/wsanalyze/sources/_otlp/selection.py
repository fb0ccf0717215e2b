"""Which spans a targeted read keeps: the file-level form of ``sources.base.Query``."""

from __future__ import annotations

from dataclasses import dataclass

from wstrace import conventions as C

from wsanalyze.sources._otlp.values import any_value, as_str


@dataclass(frozen=True)
class Selection:
    """The spans a targeted read keeps: any criterion given matches (see sources.base.Query).

    ``conversation_id``: tagged with it; ``message_ids``: tagged with no conversation and
    carrying one of these message ids; ``app_message_ids``: carrying one of these as
    message or app message id. Empty: every span (a full decode).
    """

    conversation_id: str | None = None
    message_ids: frozenset[str] = frozenset()
    app_message_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.conversation_id is not None or bool(self.message_ids or self.app_message_ids)

    def keeps(self, kvs: object) -> bool:
        """Whether a span with these OTLP attributes is selected (exact, after decoding)."""
        conversation = message = app = None
        for kv in kvs or ():
            key = kv.get("key")
            if key == C.CONVERSATION_ID:
                conversation = as_str(any_value(kv.get("value")))
            elif key == C.MESSAGE_ID:
                message = as_str(any_value(kv.get("value")))
            elif key == C.APP_MESSAGE_ID:
                app = as_str(any_value(kv.get("value")))
        if conversation is not None and conversation == self.conversation_id:
            return True
        if conversation is None and message in self.message_ids:
            return True
        return message in self.app_message_ids or app in self.app_message_ids

    def ids(self) -> frozenset[str]:
        """Every message / app message id searched for."""
        return self.message_ids | self.app_message_ids
