"""Every credential form of a layer or broker setting is hidden; where it points stays visible.

Property tests: random passwords (any character, percent-encoded; or raw, with ``@ : /``
and other specials unencoded) are put into each URL form channels_redis, redis-py,
Sentinel set-ups and Celery brokers accept. ``redact_url`` (what a person is shown) and
``redact_text`` (spans, log lines, analyzer reports) must give exactly the URL with the
password masked: the password never survives, and host, port, db and path do.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from wstrace import redact
from wstrace.channels.layer_identity import parse_host

BOUNDED = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TEXT_MASK = redact.REDACTED
URL_MASK = redact.URL_MASK

# What a raw (unencoded) password may hold: "?" and "#" end a URL's authority and
# whitespace or quotes end a URL in prose, so those only ever appear percent-encoded.
RAW = string.ascii_letters + string.digits + "@:/!$%&()*+,;=-._~[]^`{|}\\"
_NEXT_URL = re.compile(r"[;,]\s*[a-z][a-z0-9+.-]*://", re.I)


@pytest.fixture(autouse=True)
def _default_redaction():
    redact.configure(())
    yield
    redact.configure(())


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """A password as it is written into a URL's user info: raw or percent-encoded."""
    if draw(st.booleans()):
        raw = draw(st.text(alphabet=RAW, min_size=1, max_size=24))
        # "x;redis://…" inside a password reads as the next URL of a list, and a URL's
        # user info never holds "://" unencoded
        assume(not _NEXT_URL.search(raw) and "://" not in raw)
    else:
        raw = quote(draw(st.text(min_size=1, max_size=16)), safe="")
    assume(raw.strip("*") and raw != TEXT_MASK)  # "**" is Celery's own mask: kept as is
    return raw


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,6})?", fullmatch=True),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda ip: ".".join(map(str, ip))),
)
ports = st.integers(1, 65535)
dbs = st.integers(0, 15)
users = st.one_of(st.just(""), st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
query_names = st.sampled_from(["password", "pass", "auth", "token", "secret", "api_key"])

# A URL form: (password, where, mask) -> the URL, with `mask` in place of the password's
# text when given a mask; `where` carries the host, port, db and user of one example.
Form = Callable[[str, dict, str], str]


def userinfo_forms() -> dict[str, Form]:
    return {
        "redis": lambda pw, w, m: f"redis://{w['user']}:{pw}@{w['host']}:{w['port']}/{w['db']}",
        "rediss": lambda pw, w, m: f"rediss://{w['user']}:{pw}@{w['host']}:{w['port']}/{w['db']}",
        "redis-no-port": lambda pw, w, m: f"redis://:{pw}@{w['host']}",
        "unix": lambda pw, w, m: f"unix://{w['user']}:{pw}@/run/redis.sock?db={w['db']}",
        "sentinel-url": lambda pw, w, m: (
            f"redis+sentinel://:{pw}@{w['host']}:{w['port']},{w['host2']}:26379/mymaster/{w['db']}"
        ),
        "kombu-sentinel": lambda pw, w, m: (
            f"sentinel://:{pw}@{w['host']}:{w['port']};sentinel://:{pw}@{w['host2']}:26379"
        ),
        "cluster": lambda pw, w, m: (
            f"redis://:{pw}@{w['host']}:{w['port']},redis://:{pw}@{w['host2']}:7001"
        ),
        "amqp": lambda pw, w, m: f"amqp://{w['user'] or 'guest'}:{pw}@{w['host']}:{w['port']}//",
        "sqs": lambda pw, w, m: f"sqs://AKIAIOSFODNN7EXAMPLE:{pw}@",
        "postgres-backend": lambda pw, w, m: (
            f"db+postgresql://{w['user'] or 'app'}:{pw}@{w['host']}/{w['user'] or 'db'}"
        ),
    }


def query_forms() -> dict[str, Form]:
    # A query value is percent-encoded by whoever builds the URL ("&" would end it).
    return {
        "unix-query": lambda pw, w, m: (
            f"unix:///run/redis.sock?{w['name']}={m or quote(pw, safe='')}&db={w['db']}"
        ),
        "redis-query": lambda pw, w, m: (
            f"redis://{w['host']}:{w['port']}/{w['db']}?{w['name']}={m or quote(pw, safe='')}"
        ),
    }


@st.composite
def places(draw: st.DrawFn) -> dict:
    return {
        "host": draw(hosts),
        "host2": draw(hosts),
        "port": draw(ports),
        "db": draw(dbs),
        "user": draw(users),
        "name": draw(query_names),
    }


def _userinfo_case(form: Form, pw: str, where: dict, mask: str) -> tuple[str, str]:
    return form(pw, where, ""), form(mask, where, mask)


def _assert_hidden(secret_url: str, clean: str, expected: str, pw: str) -> None:
    assert clean == expected, (secret_url, clean)
    # a longer password is nowhere in what is left, not even as a piece of it
    if len(pw) >= 6 and pw not in expected:
        assert pw not in clean


@pytest.mark.parametrize("name", sorted(userinfo_forms()))
@BOUNDED
@given(pw=passwords(), where=places())
def test_a_url_s_password_is_masked_for_a_person(name: str, pw: str, where: dict) -> None:
    secret_url, expected = _userinfo_case(userinfo_forms()[name], pw, where, URL_MASK)

    _assert_hidden(secret_url, redact.redact_url(secret_url), expected, pw)


@pytest.mark.parametrize("name", sorted(userinfo_forms()))
@BOUNDED
@given(pw=passwords(), where=places(), before=st.sampled_from(["", "connecting to ", "url="]))
def test_a_url_s_password_is_redacted_in_any_text(
    name: str, pw: str, where: dict, before: str
) -> None:
    secret_url, expected = _userinfo_case(userinfo_forms()[name], pw, where, TEXT_MASK)
    line = f"{before}{secret_url} failed: Connection refused"

    clean = redact.redact_text(line)

    _assert_hidden(line, clean, f"{before}{expected} failed: Connection refused", pw)


@pytest.mark.parametrize("name", sorted(query_forms()))
@BOUNDED
@given(pw=passwords(), where=places())
def test_a_password_in_a_query_string_is_masked(name: str, pw: str, where: dict) -> None:
    form = query_forms()[name]
    secret_url = form(pw, where, "")

    _assert_hidden(secret_url, redact.redact_url(secret_url), form(pw, where, URL_MASK), pw)
    clean = redact.redact_text(secret_url)
    _assert_hidden(secret_url, clean, form(pw, where, TEXT_MASK), quote(pw, safe=""))


@BOUNDED
@given(pw=passwords(), where=places())
def test_every_url_of_a_celery_failover_list_is_masked(pw: str, where: dict) -> None:
    urls = [f"amqp://guest:{pw}@{where['host']}:5672//", f"amqp://guest:{pw}@{where['host2']}//"]

    clean = redact.redact_url(urls)

    assert clean == f"amqp://guest:***@{where['host']}:5672//;amqp://guest:***@{where['host2']}//"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:p%40ss%3Aw%2Frd@cache:6380/2", "redis://:***@cache:6380/2"),
        ("redis://:p@ss:w/rd@cache:6380/2", "redis://:***@cache:6380/2"),
        (
            "rediss://default:pw@cache.example.com:6380/0",
            "rediss://default:***@cache.example.com:6380/0",
        ),
        ("unix://:pw@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("unix:///run/redis.sock?password=pw&db=1", "unix:///run/redis.sock?password=***&db=1"),
        ("redis://cache:6379/0?pass=pw", "redis://cache:6379/0?pass=***"),
        ("redis://cache:6379/0?auth=pw&x=1", "redis://cache:6379/0?auth=***&x=1"),
        ("redis://cache:6379/0?token=pw", "redis://cache:6379/0?token=***"),
        ("redis://cache:6379/0?secret=pw", "redis://cache:6379/0?secret=***"),
        ("redis://cache:6379/0?api_key=pw", "redis://cache:6379/0?api_key=***"),
        ("redis://cache:6379/0?bypass=1", "redis://cache:6379/0?bypass=1"),
        (
            "sentinel://:pw@s1:26379;sentinel://:pw@s2:26379",
            "sentinel://:***@s1:26379;sentinel://:***@s2:26379",
        ),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("sqs://AKIAEXAMPLE:wJal/rXUt+nFEMI@", "sqs://AKIAEXAMPLE:***@"),
        ("redis://:**@localhost:6379/0", "redis://:**@localhost:6379/0"),  # Celery's own mask
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("memory://", "memory://"),
    ],
)
def test_broker_and_layer_urls_shown_to_a_person(url: str, shown: str) -> None:
    assert redact.redact_url(url) == shown


def test_channels_redis_host_entries_keep_their_shape_and_lose_their_passwords() -> None:
    hosts = [
        "redis://:pw1@cache:6379/0",
        ("cache", 6379),
        {"address": "redis://:pw2@cache:6380/1", "password": "pw3", "socket_timeout": 5},
        {"address": ("cache", 6381), "password": "pw4", "db": 2},
        {
            "sentinels": [("s1", 26379), ("s2", 26379)],
            "master_name": "mymaster",
            "password": "pw5",
            "sentinel_kwargs": {"password": "pw6", "socket_timeout": 1},
        },
    ]

    assert redact.redact_config(hosts) == [
        "redis://:***@cache:6379/0",
        ("cache", 6379),
        {"address": "redis://:***@cache:6380/1", "password": "***", "socket_timeout": 5},
        {"address": ("cache", 6381), "password": "***", "db": 2},
        {
            "sentinels": [("s1", 26379), ("s2", 26379)],
            "master_name": "mymaster",
            "password": "***",
            "sentinel_kwargs": {"password": "***", "socket_timeout": 1},
        },
    ]


@pytest.mark.parametrize(
    "text",
    [
        "{'address': 'redis://:%s@cache:6379/0', 'password': '%s'}",
        "{'master_name': 'mymaster', 'sentinel_kwargs': {'password': '%s'}}",
        '{"hosts": [{"address": ["cache", 6379], "password": "%s"}]}',
        "CHANNEL_LAYERS hosts=[('cache', 6379)] password=%s prefix=asgi",
        "broker_transport_options={'sentinel_kwargs': {'password': '%s'}}",
    ],
)
@BOUNDED
@given(pw=st.text(alphabet=RAW.replace("\\", ""), min_size=1, max_size=24))
@example(pw="APIKEY")  # a password that reads like an Authorization scheme
def test_a_layer_config_printed_in_a_log_line_loses_its_passwords(text: str, pw: str) -> None:
    if "password=%s" in text:  # unquoted: a separator ends it, as in a query string
        assume(not set(pw) & set("&,;"))

    clean = redact.redact_text(text.replace("%s", pw))

    assert clean == text.replace("%s", TEXT_MASK)


# --- ws.layer_desc: wstrace's layer identity (channels/layer_identity.py) ------------------
LOCATIONS = {
    "redis": lambda w: f"{w['host']}:{w['port']}/{w['db']}",
    "rediss": lambda w: f"{w['host']}:{w['port']}/{w['db']}",
    "redis-no-port": lambda w: f"{w['host']}:6379/0",
    "unix": lambda w: f"unix:/run/redis.sock/{w['db']}",
}


@pytest.mark.parametrize("name", sorted(LOCATIONS))
@BOUNDED
@given(pw=passwords(), where=places())
def test_a_layer_description_is_where_the_layer_is(name: str, pw: str, where: dict) -> None:
    url = userinfo_forms()[name](pw, where, "")

    assert parse_host(url).location() == LOCATIONS[name](where)


@pytest.mark.parametrize("pw", ["pw/abcdefgh", "pw[abcdefgh"])
def test_a_layer_description_with_a_slash_or_bracket_in_the_password(pw: str) -> None:
    assert parse_host(f"redis://:{pw}@cache:6379/0").location() == "cache:6379/0"


def test_a_layer_description_of_several_hosts_is_them_without_the_password() -> None:
    assert parse_host("redis://:pw-abcdefgh@h1:1,h2:2/0").location() == "h1:1,h2:2/0"
