"""Every parser of client input is total: for any input it answers a value or its
documented refusal, never another exception (Hypothesis)."""

import base64
import io
import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError
from rest_framework.pagination import Cursor as Position
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from accessctl.signing.keys import BadSignature, sign_token, verify_token
from partners import tokens
from partners.api.downloads import ByteRange, parse_range
from partners.api.edge import (
    BIGINT_MAX,
    JSON_MAX_DEPTH,
    BoundedJSONParser,
    IdConverter,
    json_depth,
)
from partners.api.errors import Problem
from partners.api.views import Cursor
from partners.storage import PATH_MAX, path_problem

SIZES = st.integers(min_value=0, max_value=2**45)
DIGITS = st.text(alphabet=string.digits, min_size=1, max_size=40)
RANGE_TEXT = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda unit, a, b, more: f"{unit}={a}-{b}{more}",
        st.sampled_from(["bytes", "BYTES", " bytes ", "items", ""]),
        st.one_of(st.just(""), DIGITS),
        st.one_of(st.just(""), DIGITS),
        st.sampled_from(["", ",", ", 0-1", ",x", " "]),
    ),
)


# Range (RFC 9110 section 14).


@given(header=RANGE_TEXT, size=SIZES)
def test_parse_range_is_total(header, size):
    try:
        parsed = parse_range(header, size)
    except Problem as refused:
        assert refused.status_code == 416 and refused.problem_code == "range_not_satisfiable"
        assert refused.headers == {"Content-Range": f"bytes */{size}"}
        return
    if parsed is not None:
        assert 0 <= parsed.start <= parsed.end < size
        assert parsed.length <= size


@given(size=st.integers(min_value=1, max_value=2**45), data=st.data())
def test_a_satisfiable_range_is_exactly_what_was_asked(size, data):
    start = data.draw(st.integers(min_value=0, max_value=size - 1))
    end = data.draw(st.integers(min_value=start, max_value=10**18 - 1))
    assert parse_range(f"bytes={start}-{end}", size) == ByteRange(start, min(end, size - 1))


@given(size=SIZES, digits=st.integers(min_value=19, max_value=6000))
def test_numbers_of_any_length_are_read_without_parsing_them(size, digits):
    """A start of more than 18 digits is past the end of any file (416); an end that long
    is clipped to the file, a suffix that long is the whole file (RFC 9110 section
    14.1.2), however many digits (no number is converted: 6,000 digits is past what
    Python's int() takes)."""
    with pytest.raises(Problem):
        parse_range("bytes=" + "9" * digits + "-", size)
    if size == 0:
        return
    assert parse_range("bytes=0-" + "9" * digits, size) == ByteRange(0, size - 1)
    assert parse_range("bytes=-" + "9" * digits, size) == ByteRange(0, size - 1)
    if size > 1:  # leading zeros: a small number, written long
        assert parse_range("bytes=" + "0" * digits + "1-", size) == ByteRange(1, size - 1)


@pytest.mark.parametrize("size", [10**18 + 1, 2**63 - 1, 2**64])
def test_a_long_suffix_is_read_exactly_against_a_larger_size(size):
    # Found by Hypothesis in CI: a 19-digit suffix was read as "past any size".
    assert parse_range("bytes=-1000000000000000000", size) == ByteRange(size - 10**18, size - 1)
    assert parse_range("bytes=1000000000000000000-", size) == ByteRange(10**18, size - 1)


def _reference(header: str, size: int):
    """RFC 9110 section 14 for one range-spec, with Python's integers of any size: "200"
    (ignored), 416, or (first, last) to send."""
    unit, equals, spec = header.partition("=")
    match = re.fullmatch(r"([0-9]*)-([0-9]*)", spec)
    if not equals or unit.lower() != "bytes" or not match or match.groups() == ("", ""):
        return "200"
    first, last = match.groups()
    if first and last and int(last) < int(first):
        return "200"  # an invalid range-spec
    if not first:
        length = min(int(last), size)
        return 416 if length == 0 else (size - length, size - 1)
    if int(first) >= size:
        return 416
    return (int(first), min(int(last), size - 1) if last else size - 1)


NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.integers(min_value=0, max_value=200).map(lambda n: "9" * n),
    st.tuples(st.integers(min_value=0, max_value=40), st.integers(0, 10**6)).map(
        lambda t: "0" * t[0] + str(t[1])
    ),
)


@given(
    unit=st.sampled_from(["bytes", "BYTES", "Bytes", "items"]),
    first=st.one_of(st.just(""), NUMBERS),
    last=st.one_of(st.just(""), NUMBERS),
    size=st.one_of(SIZES, st.integers(min_value=0, max_value=2**64)),
)
def test_one_range_is_read_as_rfc_9110_says(unit, first, last, size):
    header = f"{unit}={first}-{last}"
    expected = _reference(header, size)
    try:
        parsed = parse_range(header, size)
    except Problem as refused:
        assert expected == 416 and refused.status_code == 416, header
        return
    got = "200" if parsed is None else (parsed.start, parsed.end)
    assert got == expected, header


@given(size=st.integers(min_value=1, max_value=2**45), spacing=st.sampled_from([" ", "\t"]))
def test_only_the_plain_form_is_honoured(size, spacing):
    """A spaced or padded range is ignored (RFC 9110 lets a server ignore any Range):
    nginx would read some of them, and it sends what the app honours."""
    for header in (
        f"bytes={spacing}0-0",
        f"bytes=0{spacing}-0",
        f"bytes=0-{spacing}0",
        "bytes=0-0,",
        "bytes=,0-0",
        f"bytes {spacing}=0-0",
    ):
        assert parse_range(header, size) is None, header
    assert parse_range("Bytes=0-0", size) == ByteRange(0, 0)


@given(
    unit=st.text(alphabet=string.ascii_letters, min_size=1).filter(lambda u: u.lower() != "bytes")
)
def test_another_unit_is_ignored(unit):
    assert parse_range(f"{unit}=0-1", 100) is None


# Cursors (signed).


def _paginator(query: str = "") -> tuple[Cursor, Request]:
    paginator = Cursor()
    request = Request(APIRequestFactory().get("/api/v1/grants/" + query))
    paginator.base_url = request.build_absolute_uri()
    return paginator, request


@given(presented=st.text(max_size=200))
def test_any_cursor_decodes_or_is_cursor_invalid(presented):
    paginator, _ = _paginator()
    request = Request(APIRequestFactory().get("/api/v1/grants/", {"cursor": presented}))
    try:
        paginator.decode_cursor(request)
    except Problem as refused:
        assert (refused.status_code, refused.problem_code) == (400, "cursor_invalid")


@given(
    offset=st.integers(min_value=0, max_value=1000),
    reverse=st.booleans(),
    position=st.one_of(st.none(), st.integers(min_value=1, max_value=BIGINT_MAX)),
)
def test_our_cursors_round_trip(offset, reverse, position):
    """A cursor we signed decodes to what we encoded; the position (a row id, which DRF
    encodes as text) comes back as the integer it was."""
    paginator, _ = _paginator()
    text = None if position is None else str(position)
    url = paginator.encode_cursor(Position(offset=offset, reverse=reverse, position=text))
    request = Request(APIRequestFactory().get(url))
    assert paginator.decode_cursor(request) == Position(offset, reverse, position)


@given(position=st.text(max_size=50))
def test_a_cursor_made_by_a_client_is_refused(position):
    """DRF's own encoding of any position, unsigned: refused before it is decoded."""
    forged = base64.b64encode(f"p={position}".encode()).decode()
    paginator, _ = _paginator()
    request = Request(APIRequestFactory().get("/api/v1/grants/", {"cursor": forged}))
    with pytest.raises(Problem):
        paginator.decode_cursor(request)


# File paths.


@given(path=st.text(max_size=PATH_MAX + 20))
def test_path_problem_is_total_and_a_clean_path_has_no_control_character(path):
    problem = path_problem(path)
    if problem is None:
        assert 0 < len(path) <= PATH_MAX
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in path)
        assert not path.startswith("/") and "\\" not in path
        assert all(segment not in {"", ".", ".."} for segment in path.split("/"))


# API tokens.


@given(text=st.text(max_size=60))
def test_is_well_formed_is_total(text):
    assert tokens.is_well_formed(text) in {True, False}


@given(data=st.data())
def test_a_generated_token_is_well_formed_and_any_one_change_is_not(data):
    token = tokens.generate()
    assert tokens.is_well_formed(token)
    index = data.draw(st.integers(min_value=len(tokens.PREFIX), max_value=len(token) - 1))
    other = data.draw(st.sampled_from(string.ascii_letters + string.digits))
    changed = token[:index] + other + token[index + 1 :]
    assert tokens.is_well_formed(changed) == (changed == token)
    assert not tokens.is_well_formed(token + "\n")


# Grant tokens (JWS): any text, and any header a client could put in one.


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.django_db
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda kid, claims, sig: ".".join(
                [
                    _b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode()),
                    _b64(json.dumps(claims).encode()),
                    sig,
                ]
            ),
            st.one_of(st.text(max_size=80), JSON_VALUES),
            JSON_VALUES,
            st.text(alphabet=string.ascii_letters + "-_", max_size=90),
        ),
    )
)
def test_verify_token_is_total(text):
    try:
        claims = verify_token(text)
    except BadSignature:
        return
    assert isinstance(claims, dict)


@pytest.mark.django_db
def test_a_token_we_signed_verifies_and_a_changed_one_does_not():
    token = sign_token({"grant": 1, "nbf": 0, "exp": 2**40})
    assert verify_token(token)["grant"] == 1
    header, _claims, signature = token.split(".")
    with pytest.raises(BadSignature):
        verify_token(".".join([header, _b64(b'{"grant": 2}'), signature]))


# Bodies and path ids.


@given(depth=st.integers(min_value=0, max_value=5000))
def test_json_depth_counts_nesting_without_recursing(depth):
    assert json_depth(b"[" * depth + b"]" * depth) == depth
    assert json_depth(json.dumps({"a": "[[[[{{{{"}).encode()) == 1


@given(body=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_the_json_parser_is_total(body):
    try:
        BoundedJSONParser().parse(io.BytesIO(body))
    except ParseError as refused:
        assert refused.get_codes() in {"malformed_request", "json_too_deep", "text_invalid"}


def test_the_json_parser_refuses_depth_and_lone_surrogates():
    deep = b"[" * (JSON_MAX_DEPTH + 1) + b"]" * (JSON_MAX_DEPTH + 1)
    with pytest.raises(ParseError) as refused:
        BoundedJSONParser().parse(io.BytesIO(deep))
    assert refused.value.get_codes() == "json_too_deep"
    with pytest.raises(ParseError) as refused:
        BoundedJSONParser().parse(io.BytesIO(b'{"reason": "\\ud800"}'))
    assert refused.value.get_codes() == "text_invalid"
    ok = b"[" * JSON_MAX_DEPTH + b"]" * JSON_MAX_DEPTH
    assert BoundedJSONParser().parse(io.BytesIO(ok)) is not None


@given(digits=st.text(alphabet=string.digits, min_size=1, max_size=19))
def test_path_ids_are_bigints_or_no_route(digits):
    try:
        number = IdConverter().to_python(digits)
    except ValueError:
        assert int(digits) > BIGINT_MAX
    else:
        assert 0 <= number <= BIGINT_MAX
