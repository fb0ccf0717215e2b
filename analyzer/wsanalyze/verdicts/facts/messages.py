"""Facts per message: how far each (conversation, message) got along its chain.

Every row of a message's chain gets helper columns (``_masks``: each value only
where it matters), then one group_by per (conversation, message) aggregates them
(``_message_aggs``) and ``message_facts`` derives what the rules read: the first
missing hop, whether the answer is complete, the latest error.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from ..answers import annotate
from ..logchains import LOG_EVIDENCE
from ._rows import NOT_ERRORS, conf_rank, distinct_count, errored, exception_text, hop_is, row_end

MESSAGE_HOPS = c.MESSAGE_HOPS
_EV_BUFFER_OVERFLOW = c.EV_BUFFER_OVERFLOW
_SPAN_DROP = c.SPAN_DROP
_EXC_UNAVAILABLE = (
    r"(?i)connection ?refused|error 111|connecting to|connectionerror|connection closed by server|"
    r"timeout connecting|timed? ?out|oom command|connectionreset|name or service not known|"
    r"no route to host|busyloading"
)
_EXC_CHANNEL_FULL = r"(?i)channelfull|channel_full|over capacity"
_EXC_STUCK = r"(?i)workerlost|timelimitexceeded|soft time limit|time limit|sigkill"


def _masks() -> list[pl.Expr]:
    """Per-row helper columns: each value only where it matters, so aggregation is plain min/max/sum.

    (Filtering inside group_by contexts is an order of magnitude slower at a million spans.)
    Publish counts come from ``answers.annotate``: only publishes that answer the
    conversation count as chunks; the rest are side effects.
    """
    ok = ~errored().fill_null(False)
    benign = pl.col("exception").str.contains(NOT_ERRORS).fill_null(False)
    raised = pl.col("exception").is_not_null() & ~benign
    chain = pl.col("_chain")
    out: list[pl.Expr] = []
    for hop in MESSAGE_HOPS:
        is_hop = (hop_is(hop) & chain).fill_null(False)
        bad = is_hop & errored().fill_null(False)
        out += [
            is_hop.alias(f"_is_{hop}"),
            bad.alias(f"_bad_{hop}"),
            pl.when(bad).then(exception_text()).alias(f"_exc_{hop}"),
            pl.when(is_hop).then(pl.col("cause")).alias(f"_cause_{hop}"),
            pl.when(is_hop).then(pl.col("ts")).alias(f"_ts_{hop}"),
            pl.when(bad).then(pl.col("ts")).alias(f"_errts_{hop}"),
            pl.when(is_hop).then(pl.col("source")).alias(f"_src_{hop}"),
        ]
    publish = (hop_is(c.HOP_PUBLISH) & chain).fill_null(False)
    answer = publish & pl.col("_answers")
    side = publish & ~pl.col("_answers")
    event = pl.col("event")
    task_run = (hop_is(c.HOP_TASK) & chain & (event != c.EV_TASK_REVOKED)).fill_null(False)
    revoked = ((event == c.EV_TASK_REVOKED) | (pl.col("cause") == "task_revoked")).fill_null(False)
    enqueue = (hop_is(c.HOP_ENQUEUE) & chain).fill_null(False)
    deliver = (hop_is(c.HOP_DELIVER) & chain).fill_null(False)
    send = (hop_is(c.HOP_SEND) & chain).fill_null(False)
    receive = (hop_is(c.HOP_RECEIVE) & chain).fill_null(False)
    empty = answer & ((pl.col("members") == 0) | (pl.col("receivers") == 0)).fill_null(False)
    full = answer & (
        (pl.col("over_capacity") > 0)
        | (event == c.EV_CHANNEL_FULL)
        | (pl.col("name") == c.EV_CHANNEL_FULL)
        | pl.col("exception").str.contains(_EXC_CHANNEL_FULL)
    ).fill_null(False)
    drop = ((event == _EV_BUFFER_OVERFLOW) | (pl.col("name") == _SPAN_DROP)).fill_null(False)
    answered_ok = answer & ~raised
    gap = answered_ok & (pl.col("_n_dlv") == 0).fill_null(False)
    orphan = deliver & ok & pl.col("_dlv_orphan") & (event != c.EV_BUFFER_OVERFLOW)
    # a pub/sub read must be forwarded: the subscriber's job is the send
    unsent = (answered_ok & (pl.col("event") == c.EV_REDIS_PUBLISH)).fill_null(False)
    direct = send & ok & (pl.col("_parent_hop") != c.HOP_DELIVER).fill_null(True)
    out += [
        pl.when(receive).then(pl.col("connection_id")).alias("_conn_receive"),
        pl.when(receive).then(pl.col("span_id")).alias("_receive_span"),
        pl.when(receive).then(pl.col("frame_type")).alias("_frame_type"),
        pl.when(receive).then(pl.col("expects_answer")).alias("_expects"),
        pl.when(receive).then(pl.col("event")).alias("_receive_event"),
        pl.when(receive).then(pl.col("service")).alias("_receive_service"),
        pl.col("app_message_id").alias("_app_id"),
        pl.when(task_run).then(pl.col("service")).alias("_task_service"),
        pl.when(enqueue).then(pl.col("queue")).alias("_queue"),
        pl.when(enqueue).then(pl.col("task_name")).alias("_task_name_enq"),
        pl.when(task_run).then(pl.col("task_name")).alias("_task_name_task"),
        pl.when(task_run).then(pl.col("task_id")).alias("_task_id"),
        pl.when(enqueue).then(pl.col("task_id")).alias("_enq_task_id"),
        task_run.alias("_task_run"),
        (task_run & pl.col("end_ts").is_null()).alias("_task_unended"),
        (task_run & pl.col("end_ts").is_not_null() & ok).alias("_task_done"),
        pl.when(task_run).then(pl.col("end_ts")).alias("_task_end"),
        pl.when(task_run).then(pl.col("exception")).alias("_task_exc"),
        revoked.alias("_revoked"),
        pl.when(revoked).then(pl.col("task_id")).alias("_revoked_task"),
        pl.when(revoked).then(pl.col("ts")).alias("_revoked_ts"),
        pl.when(revoked).then(pl.col("source") == "log").alias("_revoked_log"),
        pl.when(revoked & (pl.col("source") == "log"))
        .then(pl.col("status_message"))
        .alias("_revoked_how"),
        (hop_is(c.HOP_TASK) & chain & (event == c.EV_TASK_LOST)).fill_null(False).alias("_lost"),
        # published = the layer call returned (a refusal for capacity still counts; a raise does not)
        answered_ok.alias("_pub_ok"),
        answer.alias("_pub_any"),
        side.alias("_side"),
        pl.when(side).then(pl.col("group")).alias("_side_group"),
        pl.when(answered_ok).then(pl.col("_n_dlv")).alias("_dlv_n"),
        pl.when(answered_ok).then(pl.col("_n_sent")).alias("_sent_n"),
        pl.when(orphan).then(pl.col("_d_sends")).alias("_orphan_sent"),
        orphan.alias("_orphan_dlv"),
        pl.when(orphan).then(pl.col("_pub_of")).alias("_orphan_pub"),
        gap.alias("_gap"),
        pl.when(gap).then(pl.col("ts")).alias("_gap_ts"),
        pl.when(gap).then(pl.col("_stream")).alias("_gap_stream"),
        pl.when(gap).then(pl.col("service")).alias("_gap_service"),
        (unsent & (pl.col("_n_unsent") > 0).fill_null(False)).alias("_unsent"),
        pl.when(answer).then(pl.col("_stream")).alias("_stream_ans"),
        pl.when(answer & pl.col("_stream_absent")).then(pl.col("_stream")).alias("_absent_run"),
        pl.when(answer).then(pl.col("_stream")).alias("_pub_stream"),
        direct.alias("_direct"),
        empty.alias("_empty"),
        pl.when(empty).then(pl.col("ts")).alias("_empty_ts"),
        # a group_send reads the members somewhere between its start and its end
        pl.when(empty).then(pl.coalesce("end_ts", "ts")).alias("_empty_end"),
        pl.when(answer).then(pl.col("members")).alias("_members"),
        pl.when(answer).then(pl.col("receivers")).alias("_receivers"),
        pl.when(answer).then(pl.col("over_capacity")).alias("_over"),
        full.alias("_full"),
        pl.when(answer).then(pl.col("layer")).alias("_layer"),
        pl.when(answer).then(pl.coalesce("group", "channel")).alias("_group"),
        pl.when(answer).then(pl.col("event")).alias("_pub_event"),
        pl.when(answer).then(pl.col("message_type")).alias("_message_type"),
        pl.when(answer).then(pl.col("ts")).alias("_pub_ts"),
        pl.when(deliver).then(pl.col("connection_id")).alias("_dlv_conn"),
        pl.when(deliver & ok).then(pl.col("ts")).alias("_dlv_ts"),
        pl.when(drop).then(pl.col("span_id")).alias("_dropped"),
        row_end().alias("_end"),
        (pl.col("source") == "log").fill_null(False).alias("_from_log"),
        pl.when(pl.col("source") == "log").then(pl.col("detail")).alias("_log_detail"),
        conf_rank().alias("_conf"),
    ]
    return out


def _message_aggs() -> list[pl.Expr]:
    n = pl.col
    aggs: list[pl.Expr] = [
        pl.coalesce(n("_conn_receive").max(), n("connection_id").max()).alias("connection_id"),
        n("ts").min().alias("first_ts"),
        n("_end").max().alias("last_ts"),
        n("_task_service").max().alias("task_service"),
        n("_frame_type").max().alias("frame_type"),
        n("_expects").max().alias("expects_answer"),
        n("_receive_event").max().alias("receive_event"),
        n("_receive_service").max().alias("receive_service"),
        n("_receive_span").drop_nulls().unique().alias("receive_spans"),
        n("_app_id").drop_nulls().unique().sort().alias("app_ids"),
    ]
    for hop in MESSAGE_HOPS:
        aggs += [
            n(f"_is_{hop}").sum().cast(pl.Int64).alias(f"n_{hop}"),
            n(f"_bad_{hop}").any().alias(f"err_{hop}"),
            n(f"_exc_{hop}").max().alias(f"exc_{hop}"),
            n(f"_cause_{hop}").max().alias(f"cause_{hop}"),
            n(f"_ts_{hop}").min().alias(f"ts_{hop}"),
            n(f"_errts_{hop}").min().alias(f"err_ts_{hop}"),
            n(f"_src_{hop}").max().alias(f"src_{hop}"),
        ]
    aggs += [
        n("_queue").max().alias("queue"),
        pl.coalesce(n("_task_name_enq").max(), n("_task_name_task").max()).alias("task_name"),
        distinct_count("_task_id").alias("task_ids"),
        distinct_count("_enq_task_id").alias("enqueued_tasks"),
        n("_task_run").sum().cast(pl.Int64).alias("task_runs"),
        n("_task_unended").any().alias("task_unended"),
        n("_task_done").sum().cast(pl.Int64).alias("tasks_done"),
        n("_task_end").max().alias("task_end_ts"),
        n("_task_exc").max().alias("task_exception"),
        n("_revoked").any().alias("revoked"),
        n("_revoked_task").max().alias("revoked_task_id"),
        n("_revoked_ts").min().alias("revoked_ts"),
        n("_revoked_log").min().fill_null(False).alias("revoked_from_log"),
        n("_revoked_how").drop_nulls().first().alias("revoked_how"),
        n("_lost").any().alias("task_lost"),
        n("_enq_task_id").max().alias("enq_task_id"),
        n("_pub_ok").sum().cast(pl.Int64).alias("published"),
        n("_pub_any").sum().cast(pl.Int64).alias("publish_attempts"),
        n("_side").sum().cast(pl.Int64).alias("side_effects"),
        n("_side_group").drop_nulls().unique().sort().alias("side_groups"),
        (n("_dlv_n").sum() + n("_orphan_dlv").sum()).cast(pl.Int64).alias("delivered"),
        (n("_sent_n").sum() + n("_orphan_sent").sum()).cast(pl.Int64).alias("sent"),
        n("_orphan_dlv").sum().cast(pl.Int64).alias("orphan_deliveries"),
        distinct_count("_orphan_pub").alias("orphan_publishes"),
        n("_gap").sum().cast(pl.Int64).alias("gaps"),
        n("_gap_ts").min().alias("gap_ts"),
        n("_gap_stream").drop_nulls().first().alias("gap_stream"),
        n("_gap_service").drop_nulls().first().alias("gap_service"),
        n("_unsent").sum().cast(pl.Int64).alias("unsent"),
        distinct_count("_stream_ans").alias("streams"),
        n("_absent_run").drop_nulls().first().alias("absent_run"),
        n("_pub_stream").drop_nulls().unique().alias("pub_streams"),
        n("_direct").sum().cast(pl.Int64).alias("direct_sent"),
        n("_empty").any().alias("empty_publish"),
        n("_empty_ts").min().alias("empty_publish_ts"),
        n("_empty_end").min().alias("empty_publish_end_ts"),
        n("_members").min().alias("min_members"),
        n("_receivers").min().alias("min_receivers"),
        n("_over").sum().cast(pl.Int64).alias("over_capacity"),
        # ws.over_capacity is written (0 included) wherever the layer's capacity check was
        # seen: then a chunk that was not refused and never arrived was lost elsewhere.
        n("_over").is_not_null().any().alias("capacity_checked"),
        n("_full").any().alias("channel_full"),
        n("_layer").max().alias("publish_layer"),
        n("_group").max().alias("publish_group"),
        n("_pub_event").max().alias("publish_event"),
        n("_message_type").max().alias("message_type"),
        n("_pub_ts").max().alias("last_publish_ts"),
        n("_dlv_conn").max().alias("deliver_connection_id"),
        n("_dlv_ts").max().alias("last_deliver_ts"),
        distinct_count("_dropped").alias("dropped"),
        # log evidence: rows made from log lines (verdicts.logchains), how sure, which lines
        n("_from_log").all().alias("log_only"),
        n("_from_log").any().alias("has_log"),
        n("_conf").max().alias("confidence_rank"),
        n("_log_detail")
        .drop_nulls()
        .str.split("\n")
        .explode()
        .unique(maintain_order=True)
        .alias("log_lines"),
    ]
    return aggs


def log_evidence(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per message with spans: log lines tied to it exactly (``logchains.LOG_EVIDENCE`` rows),
    shown in its evidence; they take part in no fact."""
    return (
        events.filter(
            (pl.col("kind") == LOG_EVIDENCE).fill_null(False)
            & pl.col("message_id").is_not_null()
            & pl.col("conversation_id").is_not_null()
        )
        .group_by("conversation_id", "message_id")
        .agg(
            pl.col("detail")
            .sort_by("ts")
            .drop_nulls()
            .str.split("\n")
            .explode()
            .unique(maintain_order=True)
            .alias("log_evidence")
        )
    )


def _latest_error(column: str) -> pl.Expr:
    """Value of ``{column}_{hop}`` at the latest errored hop along the chain."""
    out = None
    for hop in reversed(MESSAGE_HOPS):
        value = pl.lit(hop) if column == "hop" else pl.col(f"{column}_{hop}")
        cond = pl.col(f"err_{hop}")
        out = pl.when(cond).then(value) if out is None else out.when(cond).then(value)
    return out.otherwise(None)


def message_facts(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (conversation_id, message_id) with how far the message got."""
    rows = annotate(events).filter(
        pl.col("message_id").is_not_null()
        & pl.col("conversation_id").is_not_null()
        & pl.col("_chain")
    )
    facts = (
        rows.with_columns(_masks())
        .group_by("conversation_id", "message_id")
        .agg(_message_aggs())
        .join(log_evidence(events), on=["conversation_id", "message_id"], how="left")
    )
    n = pl.col
    # a publish from another run than the message's own receive (or a delivery whose
    # publish never reached the store) proves that work started elsewhere
    off_run = n("pub_streams").list.set_difference(n("receive_spans")).list.len() > 0
    return (
        facts.with_columns(
            err_hop=_latest_error("hop"),
            err_exc=_latest_error("exc"),
            err_cause=_latest_error("cause"),
            err_ts=_latest_error("err_ts"),
            work_seen=(n("task_runs") > 0) | off_run | (n("orphan_deliveries") > 0),
            run_lost=n("absent_run").is_not_null() | (n("orphan_deliveries") > 0),
            duplicate_tasks=(n("task_ids") > 0) & (n("task_runs") > n("task_ids")),
        )
        .with_columns(
            # enqueued work that never reported its end: an unended span, or publishes /
            # deliveries whose run never reached the store (its process died)
            task_open=(n("task_unended") | (n("run_lost") & (n("tasks_done") == 0)))
            & ~n("revoked"),
            task_seen=n("work_seen") | (n("n_publish") > 0) & (n("n_enqueue") == 0),
            handled=(n("n_enqueue") == 0)
            & (n("publish_attempts") == 0)
            & (n("orphan_deliveries") == 0)
            & (n("expects_answer").fill_null(False).not_()),
        )
        .with_columns(
            any_error=n("err_hop").is_not_null(),
            exc_unavailable=n("err_exc").str.contains(_EXC_UNAVAILABLE).fill_null(False),
            exc_channel_full=n("err_exc").str.contains(_EXC_CHANNEL_FULL).fill_null(False),
            exc_stuck=n("err_exc").str.contains(_EXC_STUCK).fill_null(False),
            answered=(n("published") > 0)
            & (n("gaps") == 0)
            & (n("unsent") == 0)
            & (n("publish_attempts") <= n("published")),
            # the task finished and answered nobody in this conversation (e.g. a bot
            # that chose not to reply): nothing was lost that the evidence can show
            finished_quietly=(n("n_enqueue") > 0)
            & (n("tasks_done") > 0)
            & (n("publish_attempts") == 0)
            & (n("orphan_deliveries") == 0),
        )
        .with_columns(
            # enqueued work that never started leaves the answer incomplete, whatever
            # else (an echo, a typing event) reached the client
            complete=(n("answered") | n("handled") | n("finished_quietly"))
            & ~n("task_open")
            & ~((n("n_enqueue") > 0) & ~n("task_seen")),
            first_missing=pl.when(n("n_receive") == 0)
            .then(pl.lit(c.HOP_RECEIVE))
            .when(
                n("handled")
                | (
                    (n("n_enqueue") == 0)
                    & (n("publish_attempts") == 0)
                    & (n("orphan_deliveries") == 0)
                )
            )
            .then(pl.lit(c.HOP_ENQUEUE))
            .when((n("n_enqueue") > 0) & ~n("task_seen"))
            .then(pl.lit(c.HOP_TASK))
            .when(n("task_seen") & (n("publish_attempts") == 0) & (n("orphan_deliveries") == 0))
            .then(pl.lit(c.HOP_PUBLISH))
            .when((n("gaps") > 0) | ((n("published") == 0) & (n("orphan_deliveries") == 0)))
            .then(pl.lit(c.HOP_DELIVER))
            .when(n("unsent") > 0)
            .then(pl.lit(c.HOP_SEND))
            .when(n("task_open"))
            .then(pl.lit(c.HOP_TASK))
            .otherwise(pl.lit(c.HOP_SEND)),
        )
    )
