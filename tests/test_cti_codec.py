"""Behaviour of the sans-IO CTI codec (switchd.cti.codec, DESIGN.md §5).

Line-length convention under test: ``max_line_bytes`` counts the terminator, so with
the default 8192 a line of 8191 bytes + LF (or 8190 + CR LF) is accepted and one of
8192 bytes + LF (or 8191 + CR LF) is refused.
"""

from __future__ import annotations

import json
from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.cti.codec import (
    ERROR_CODES,
    JSON_BACK_TO_TEXT,
    DecodeError,
    LineDecoder,
    LineFramer,
    LineKind,
    Request,
    ServerLine,
    ServerLineDecoder,
    _parse_slow,
    encode_error,
    encode_reply,
    encode_request,
    parse_line,
    parse_server_line,
    quote,
)

# Every character, surrogates included (quote() must escape them to stay UTF-8).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
# Text rich in the characters that force quoting and escaping.
tricky_text = st.text(
    st.sampled_from(list(' "\\=#\t\n\r\x00\x01\x7f\x85\u2028\u2029éü中😀aZ09-_.:'))
    | st.characters(),
    max_size=30,
)
keys = st.from_regex(r"[a-z][a-z0-9_.-]{0,12}", fullmatch=True).filter(
    lambda k: k not in ("type", "tag")
)
tags = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
verbs = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,15}", fullmatch=True)


def decode_all(data: bytes, *, json_mode: bool = False) -> list[Request | DecodeError]:
    decoder = LineDecoder()
    decoder.json_mode = json_mode
    return decoder.feed(data)


def only(items: list[Request | DecodeError]) -> Request | DecodeError:
    assert len(items) == 1, items
    return items[0]


# --- round trips -------------------------------------------------------------------


@given(value=any_text | tricky_text)
def test_any_text_value_survives_quote_encode_and_decode(value):
    line = encode_reply("OK", {"v": value})
    assert b"\n" not in line[:-1] and b"\r" not in line
    line.decode("utf-8")  # never raises: surrogates are escaped, not encoded
    request = only(decode_all(line))
    assert request == Request("OK", {"v": value})


@given(fields=st.dictionaries(keys, any_text | tricky_text, max_size=6), tag=st.none() | tags)
def test_many_fields_and_the_tag_round_trip_through_a_reply(fields, tag):
    request = only(decode_all(encode_reply("ITEM", fields, tag=tag)))
    assert request == Request("ITEM", fields, (), tag)


@given(value=any_text | tricky_text)
def test_event_name_and_hello_version_travel_as_the_positional_argument(value):
    event = only(decode_all(encode_reply("EVENT", {"event": value, "x": "1"})))
    assert event == Request("EVENT", {"x": "1"}, (value,))
    hello = only(decode_all(encode_reply("HELLO", {"version": value, "proto": 1})))
    assert hello == Request("HELLO", {"proto": "1"}, (value,))


@given(tag=tags, verb=verbs)
def test_tag_is_echoed_and_verb_is_upper_cased(tag, verb):
    request = only(decode_all(f"#{tag} {verb} a=1\n".encode()))
    assert request == Request(verb.upper(), {"a": "1"}, (), tag)
    assert encode_reply("OK", tag=request.tag) == f"#{tag} OK\n".encode()


@given(line=st.text(st.sampled_from(list(' \t"\\=#aZ9.-_é\x01')), max_size=30))
def test_fast_path_agrees_with_the_full_scanner(line):
    for candidate in (line, "PING " + line, "#t cdr.query " + line):
        assert parse_line(candidate) == _parse_slow(candidate)


@given(value=st.integers() | st.booleans() | st.floats(allow_nan=False))
def test_numbers_and_booleans_decode_to_their_quoted_text(value):
    request = only(decode_all(encode_reply("OK", {"n": value})))
    assert request.args == {"n": quote(value)}


# --- quote -------------------------------------------------------------------------


class Colour(Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (1.0, "1.0"),
        (1.23456, "1.235"),
        (-0.0001, "0.0"),
        (1714000000.123456, "1714000000.123"),
        ("plain-token_1.2:3/4", "plain-token_1.2:3/4"),
        ("héllo", "héllo"),
        ("", '""'),
        ("a b", '"a b"'),
        ("a=b", '"a=b"'),
        ("#1", '"#1"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("l1\nl2\r\t", '"l1\\nl2\\r\\t"'),
        ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
        ("\u2028", '"\\u2028"'),
        ("\xa0", '"\xa0"'),
        (Colour.RED, "red"),
    ],
)
def test_quote_adds_quotes_and_escapes_only_when_needed(value, text):
    assert quote(value) == text


def test_quote_refuses_none_because_callers_must_drop_it():
    with pytest.raises(TypeError):
        quote(None)


# --- framing -----------------------------------------------------------------------


def test_crlf_and_lf_lines_decode_the_same():
    assert decode_all(b"PING a=1\r\nPING a=1\n") == [Request("PING", {"a": "1"})] * 2


def test_only_one_trailing_cr_is_stripped():
    error = only(decode_all(b"PING\r\r\n"))
    assert isinstance(error, DecodeError) and "0x0d (CR)" in error.msg


def test_a_line_fed_byte_by_byte_decodes_once_complete():
    decoder = LineDecoder()
    data = b'#9 call.dial to=1001 note="a \\"b\\" c" HELP\r\nPING\n'
    results = []
    for i in range(len(data)):
        got = decoder.feed(data[i : i + 1])
        if i < data.index(b"\n"):
            assert got == []
        results += got
    assert results == [
        Request("CALL.DIAL", {"to": "1001", "note": 'a "b" c'}, ("HELP",), "9"),
        Request("PING", {}),
    ]


@given(cuts=st.lists(st.integers(0, 60), max_size=8))
def test_any_split_of_the_stream_gives_the_same_results(cuts):
    data = b'#1 A x=1\nB y="q q"\r\n\nC \xff\nD "unterminated\n'
    whole = decode_all(data)
    decoder = LineDecoder()
    pieces, last = [], 0
    for cut in sorted(cuts):
        pieces.append(data[last:cut])
        last = max(last, cut)
    pieces.append(data[last:])
    assert [r for piece in pieces for r in decoder.feed(piece)] == whole


def test_blank_and_whitespace_only_lines_yield_nothing():
    assert decode_all(b"\n\r\n   \n\t \r\nPING\n") == [Request("PING", {})]


def test_verbs_are_case_insensitive_and_keys_are_not():
    assert only(decode_all(b"cDr.QuErY caller=1\n")) == Request("CDR.QUERY", {"caller": "1"})
    error = only(decode_all(b"PING Caller=1\n"))
    assert isinstance(error, DecodeError) and "bad key 'Caller'" in error.msg


def test_positional_arguments_keep_their_order():
    request = only(decode_all(b'HELP CALLS "two words" x=1 last\n'))
    assert request == Request("HELP", {"x": "1"}, ("CALLS", "two words", "last"))


@pytest.mark.parametrize(("terminator", "overhead"), [(b"\n", 1), (b"\r\n", 2)])
@pytest.mark.parametrize("bytewise", [False, True])
def test_8192_bytes_with_terminator_pass_and_8193_are_refused(terminator, overhead, bytewise):
    def line(total: int) -> bytes:
        return b"PING pad=" + b"x" * (total - overhead - len(b"PING pad=")) + terminator

    ok, too_long = line(8192), line(8193)
    assert len(ok) == 8192 and len(too_long) == 8193
    decoder = LineDecoder()
    data = ok + too_long + b"PING\n"
    if bytewise:
        results = [r for i in range(len(data)) for r in decoder.feed(data[i : i + 1])]
    else:
        results = decoder.feed(data)
    assert [type(r) for r in results] == [Request, DecodeError, Request]
    assert results[0].args["pad"] == "x" * (8192 - overhead - 9)
    assert results[1].code == "line_too_long"
    assert results[2] == Request("PING", {})


def test_a_megabyte_without_newline_gives_one_error_then_the_next_line_works():
    decoder = LineDecoder()
    results = decoder.feed(b"#big PING data=")
    for _ in range(256):
        results += decoder.feed(b"A" * 4096)
        assert decoder.buffered < decoder.max_line_bytes
    results += decoder.feed(b"tail\n#ok PING\n")
    assert results == [
        DecodeError("line_too_long", results[0].msg, "big"),
        Request("PING", {}, (), "ok"),
    ]
    assert "8192" in results[0].msg
    assert decoder.buffered == 0


def test_a_megabyte_in_one_feed_is_not_buffered():
    decoder = LineDecoder()
    results = decoder.feed(b"B" * 1_000_000)
    assert [r.code for r in results] == ["line_too_long"]
    assert decoder.buffered == 0
    assert decoder.feed(b"still the same line\nPING\n") == [Request("PING", {})]


def test_the_line_limit_is_configurable():
    decoder = LineDecoder(max_line_bytes=16)
    assert decoder.feed(b"PING a=12345678\n") == [Request("PING", {"a": "12345678"})]
    assert only(decoder.feed(b"PING a=123456789\n")).code == "line_too_long"


# --- bad input ---------------------------------------------------------------------


def test_invalid_utf8_names_the_byte_and_offset_and_keeps_the_tag():
    error = only(decode_all(b"#t1 PING name=caf\xe9\n"))
    assert error == DecodeError(
        "bad_syntax", "line is not valid UTF-8 (byte 0xe9 at offset 17)", "t1"
    )


def test_nul_byte_is_refused_with_its_column():
    error = only(decode_all(b"#t PING a=x\x00y\n"))
    assert error.code == "bad_syntax" and error.tag == "t"
    assert "0x00 (NUL)" in error.msg and "column 12" in error.msg


def test_raw_control_character_inside_quotes_is_refused_but_its_escape_works():
    assert only(decode_all(b'PING a="\x01"\n')).code == "bad_syntax"
    assert only(decode_all(b'PING a="\\x01\\u00e9"\n')) == Request("PING", {"a": "\x01é"})


def test_tab_separates_arguments_and_is_kept_inside_quotes():
    assert only(decode_all(b'PING\ta=1\tb="x\ty"\n')) == Request("PING", {"a": "1", "b": "x\ty"})


@given(data=st.binary(max_size=300), json_mode=st.booleans())
@settings(max_examples=300)
def test_random_bytes_never_raise_and_give_only_requests_or_errors(data, json_mode):
    decoder = LineDecoder(max_line_bytes=64)
    decoder.json_mode = json_mode
    results = decoder.feed(data) + decoder.feed(b"\n")
    assert all(isinstance(r, Request | DecodeError) for r in results)
    assert all(r.code in ERROR_CODES for r in results if isinstance(r, DecodeError))
    assert decoder.buffered < 64


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('#t PING a="open', "unterminated quote starting at column 11"),
        ('PING a="ends with backslash\\', "unterminated quote"),
        ('PING a="bad \\q escape"', "unknown escape '\\q' at column 13"),
        ('PING a="\\x4"', "bad escape '\\x'"),
        ('PING a="\\u12"', "bad escape '\\u'"),
        ('PING a="x"b', "unexpected 'b' right after the closing quote at column 11"),
        ('PING a=x"y"', "unexpected '\"' in the value of 'a' at column 9"),
        ('PING a"b"', "unexpected '\"' at column 7"),
        ("PING a=b=c", "unexpected '=' in the value of 'a' at column 9"),
        ("PING a==b", "unexpected '=' in the value of 'a' at column 8"),
        ("PING =b", "'=' without a key at column 6"),
        ("PING a= b=1", "missing value after 'a=' at column 8"),
        ("PING 1a=2", "bad key '1a' at column 6"),
        ("PING a=1 b=2 a=3", "duplicate key 'a' at column 14"),
        ('PING a=1 a="3"', "duplicate key 'a' at column 10"),
        ("x=1 PING", "missing verb at column 1"),
        ('"PING"', "missing verb at column 1"),
        ("#t", "missing verb after the tag"),
        ("#t!x PING", "bad tag at column 1"),
        ("#" + "a" * 65 + " PING", "bad tag at column 1"),
        ("P!NG", "bad verb 'P!NG' at column 1"),
        ("", "missing verb"),
    ],
)
def test_bad_syntax_names_the_problem_and_its_column(line, fragment):
    error = parse_line(line)
    assert isinstance(error, DecodeError) and error.code == "bad_syntax"
    assert fragment in error.msg
    assert error.tag == ("t" if line.startswith("#t ") or line == "#t" else None)


# --- JSON mode ---------------------------------------------------------------------


def test_json_request_values_become_strings_and_null_drops_the_key():
    line = b'{"verb": "cdr.query", "tag": "7", "caller": "1001", "limit": 5, "ratio": 0.5, "all": true, "x": null}\n'
    assert only(decode_all(line, json_mode=True)) == Request(
        "CDR.QUERY", {"caller": "1001", "limit": "5", "ratio": "0.5", "all": "true"}, (), "7"
    )


def test_json_integer_tag_is_accepted_as_text():
    assert only(decode_all(b'{"verb":"PING","tag":42}\n', json_mode=True)).tag == "42"


@pytest.mark.parametrize(
    ("line", "fragment", "tag"),
    [
        (b'{"verb": "PING",\n', "not valid JSON", None),
        (b"[1, 2]\n", "must be an object, got an array", None),
        (b'"PING"\n', "must be an object, got a string", None),
        (b'{"tag": "t", "caller": "1"}\n', "missing verb", "t"),
        (b'{"verb": 5, "tag": "t"}\n', "missing verb", "t"),
        (b'{"verb": "PING", "tag": "t", "q": {"a": 1}}\n', "nested value for key 'q'", "t"),
        (b'{"verb": "PING", "q": [1]}\n', "nested value for key 'q' (an array)", None),
        (b'{"verb": "PING", "a": 1, "a": 2}\n', "duplicate key 'a'", None),
        (b'{"verb": "PING", "Bad": 1}\n', "bad key 'Bad'", None),
        (b'{"verb": "PING", "n": NaN}\n', "NaN", None),
        (b'{"verb": "PING", "tag": "bad tag"}\n', "bad tag", None),
        (b'{"verb": "P NG"}\n', "bad verb", None),
        (b"[" * 5000 + b"]" * 5000 + b"\n", "not valid JSON", None),
    ],
)
def test_bad_json_requests_are_bad_syntax(line, fragment, tag):
    decoder = LineDecoder(max_line_bytes=20000)
    decoder.json_mode = True
    error = only(decoder.feed(line))
    assert isinstance(error, DecodeError) and error.code == "bad_syntax"
    assert fragment in error.msg
    assert error.tag == tag


def test_json_mode_can_be_switched_on_between_feeds():
    decoder = LineDecoder()
    assert decoder.feed(b"FORMAT json\n") == [Request("FORMAT", {}, ("json",))]
    decoder.json_mode = True
    assert decoder.feed(b'{"verb":"ping"}\n') == [Request("PING", {})]


def test_json_replies_keep_native_types_and_drop_none():
    line = encode_reply(
        "EVENT",
        {"event": "call.new", "n": 3, "t": 1.5, "ok": False, "s": 'a "b"\n', "gone": None},
        json_mode=True,
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert json.loads(line) == {
        "type": "EVENT",
        "event": "call.new",
        "n": 3,
        "t": 1.5,
        "ok": False,
        "s": 'a "b"\n',
    }


def test_json_hello_and_tagged_error():
    hello = encode_reply("HELLO", {"version": "switchd/0.1.0", "proto": 1}, json_mode=True)
    assert json.loads(hello) == {"type": "HELLO", "version": "switchd/0.1.0", "proto": 1}
    err = encode_error("not_found", "no call 42", tag="q1", json_mode=True)
    assert json.loads(err) == {"type": "ERR", "tag": "q1", "code": "not_found", "msg": "no call 42"}


def test_json_reply_turns_non_finite_floats_into_null():
    assert json.loads(encode_reply("OK", {"x": float("nan")}, json_mode=True))["x"] is None


@given(value=any_text)
def test_json_reply_is_one_valid_line_for_any_text(value):
    line = encode_reply("ITEM", {"v": value}, tag="t", json_mode=True)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert json.loads(line)["v"] == value


# --- encoding rules ----------------------------------------------------------------


def test_text_replies_have_the_documented_shape():
    assert encode_reply("HELLO", {"version": "switchd/0.1.0", "proto": 1}) == (
        b"HELLO switchd/0.1.0 proto=1\n"
    )
    assert encode_reply("END", {"count": 0}, tag="a.b") == b"#a.b END count=0\n"
    assert encode_reply("EVENT", {"event": "call.new", "call_id": "01H", "x": None}) == (
        b"EVENT call.new call_id=01H\n"
    )
    assert encode_error("bad_arg", "timeout must be a number", tag="5") == (
        b'#5 ERR code=bad_arg msg="timeout must be a number"\n'
    )


def test_encode_error_rejects_a_code_outside_the_closed_set():
    with pytest.raises(ValueError, match="unknown error code"):
        encode_error("oops", "x")


@pytest.mark.parametrize(
    ("kind", "fields", "tag"),
    [
        ("NOPE", {}, None),
        ("OK", {"Bad": 1}, None),
        ("OK", {"a b": 1}, None),
        ("OK", {"type": 1}, None),
        ("OK", {}, "#7"),
        ("OK", {}, "with space"),
        ("EVENT", {"x": 1}, None),
        ("HELLO", {"proto": 1}, None),
    ],
)
def test_encode_reply_refuses_what_the_wire_cannot_carry(kind, fields, tag):
    with pytest.raises(ValueError):
        encode_reply(kind, fields, tag=tag)


def test_error_codes_are_the_documented_closed_set():
    assert ERROR_CODES == {
        "bad_syntax", "unknown_verb", "missing_arg", "bad_arg", "not_authenticated",
        "forbidden", "not_found", "wrong_state", "busy", "line_too_long", "overloaded",
        "internal",
    }  # fmt: skip



# --- end of input ------------------------------------------------------------------


def test_a_last_line_without_newline_is_decoded_at_end_of_input():
    decoder = LineDecoder()
    assert decoder.feed(b"PING\n#last PING x=1") == [Request("PING", {})]
    assert decoder.feed_eof() == [Request("PING", {"x": "1"}, (), "last")]
    assert decoder.buffered == 0
    assert decoder.feed_eof() == []


def test_end_of_input_strips_a_final_cr_and_skips_blank_rest():
    decoder = LineDecoder()
    decoder.feed(b"PING a=1\r")
    assert decoder.feed_eof() == [Request("PING", {"a": "1"})]
    decoder.feed(b"PING\n  \t")
    assert decoder.feed_eof() == []


def test_end_of_input_after_an_over_long_line_reports_it_only_once():
    decoder = LineDecoder(max_line_bytes=16)
    assert [r.code for r in decoder.feed(b"#t PING " + b"x" * 40)] == ["line_too_long"]
    assert decoder.feed_eof() == []
    assert decoder.feed(b"PING\n") == [Request("PING", {})]


def test_end_of_input_in_json_mode_decodes_the_last_object():
    decoder = LineDecoder()
    decoder.json_mode = True
    assert decoder.feed(b'{"verb":"PING","tag":"z"}') == []
    assert decoder.feed_eof() == [Request("PING", {}, (), "z")]


@given(cuts=st.lists(st.integers(0, 40), max_size=6))
def test_end_of_input_gives_what_a_final_newline_would_give(cuts):
    data = b'#1 A x=1\r\nB y="q q"\nC \xff\nD last'
    expected = LineDecoder().feed(data + b"\n")
    decoder = LineDecoder()
    got, last = [], 0
    for cut in sorted(cuts):
        got += decoder.feed(data[last:cut])
        last = max(last, cut)
    got += decoder.feed(data[last:]) + decoder.feed_eof()
    assert got == expected


def test_a_non_json_line_in_json_mode_says_how_to_get_back_to_text():
    error = only(decode_all(b"FORMAT text\n", json_mode=True))
    assert error.code == "bad_syntax"
    assert error.msg.startswith("not valid JSON: Expecting value at column 1")
    assert JSON_BACK_TO_TEXT in error.msg
    # ...and the hint it gives is itself a request that switches back.
    assert only(decode_all(JSON_BACK_TO_TEXT.encode() + b"\n", json_mode=True)) == Request(
        "FORMAT", {"mode": "text"}
    )


def test_a_json_scalar_in_json_mode_also_gets_the_hint():
    error = only(decode_all(b"42\n", json_mode=True))
    assert "must be an object, got a number" in error.msg and JSON_BACK_TO_TEXT in error.msg


def test_a_non_string_json_verb_is_named_by_its_type():
    error = only(decode_all(b'{"verb": ["PING"]}\n', json_mode=True))
    assert error.msg == 'missing verb: "verb" is an array, not a string'


# --- server lines (the client side) -----------------------------------------------

reply_kinds = st.sampled_from(["OK", "ITEM", "END"])
scalar_values = (
    any_text
    | tricky_text
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
)
reply_fields = st.dictionaries(keys, scalar_values | st.none(), max_size=6)


def _text_fields(fields: dict[str, object]) -> dict[str, str]:
    """What a text line carries for ``fields``: the text of each value, nulls left out."""
    return {k: v if isinstance(v, str) else quote(v) for k, v in fields.items() if v is not None}


def _assert_same_json_fields(got: ServerLine, fields: dict[str, object]) -> None:
    """JSON keeps types: 1 must not come back as True, nor 1.0 as 1."""
    expected = {k: v for k, v in fields.items() if v is not None}
    assert dict(got.fields) == expected
    assert {k: type(v) for k, v in got.fields.items()} == {k: type(v) for k, v in expected.items()}


@given(kind=reply_kinds, fields=reply_fields, tag=st.none() | tags)
def test_every_text_reply_parses_back_to_its_fields(kind, fields, tag):
    line = encode_reply(kind, fields, tag=tag)
    assert parse_server_line(line) == ServerLine(LineKind(kind), _text_fields(fields), tag)


@given(kind=reply_kinds, fields=reply_fields, tag=st.none() | tags)
def test_every_json_reply_parses_back_to_its_fields_with_their_types(kind, fields, tag):
    got = parse_server_line(encode_reply(kind, fields, tag=tag, json_mode=True), json_mode=True)
    assert isinstance(got, ServerLine)
    assert (got.kind, got.tag) == (LineKind(kind), tag)
    _assert_same_json_fields(got, fields)


@given(
    name=any_text.filter(bool) | tricky_text.filter(bool),
    fields=st.dictionaries(keys.filter(lambda k: k != "event"), scalar_values, max_size=5),
    json_mode=st.booleans(),
)
def test_every_event_parses_back_with_its_name(name, fields, json_mode):
    line = encode_reply("EVENT", {"event": name, **fields}, json_mode=json_mode)
    got = parse_server_line(line, json_mode=json_mode)
    assert isinstance(got, ServerLine) and got.kind is LineKind.EVENT and got.tag is None
    assert got.event_name == name
    if json_mode:
        _assert_same_json_fields(got, {"event": name, **fields})
    else:
        assert got.fields == {"event": name, **_text_fields(fields)}


@given(code=st.sampled_from(sorted(ERROR_CODES)), msg=any_text | tricky_text,
       tag=st.none() | tags, json_mode=st.booleans())
def test_every_error_parses_back_to_code_and_msg(code, msg, tag, json_mode):
    got = parse_server_line(encode_error(code, msg, tag=tag, json_mode=json_mode),
                            json_mode=json_mode)
    assert got == ServerLine(LineKind.ERR, {"code": code, "msg": msg}, tag)


@pytest.mark.parametrize("json_mode", [False, True])
def test_hello_parses_to_version_and_proto(json_mode):
    got = parse_server_line(
        encode_reply("HELLO", {"version": "switchd/0.1.0", "proto": 1}, json_mode=json_mode),
        json_mode=json_mode,
    )
    proto = 1 if json_mode else "1"
    assert got == ServerLine(LineKind.HELLO, {"version": "switchd/0.1.0", "proto": proto})
    assert got.event_name is None and not got.kind.final


def test_only_ok_err_and_end_end_a_reply():
    assert {k for k in LineKind if k.final} == {LineKind.OK, LineKind.ERR, LineKind.END}


def test_a_json_enum_and_a_non_finite_float_come_back_as_the_wire_has_them():
    line = encode_reply("OK", {"c": Colour.RED, "x": float("inf"), "n": 2}, json_mode=True)
    assert parse_server_line(line, json_mode=True) == ServerLine(LineKind.OK, {"c": "red", "n": 2})


@pytest.mark.parametrize(
    ("line", "fragment", "tag"),
    [
        ("#q FOO a=1", "unknown line kind 'FOO' at column 4", "q"),
        ("hello", "unknown line kind 'hello' at column 1", None),
        ("EVENT", "EVENT line without its event name", None),
        ("HELLO proto=1", "HELLO line without its version", None),
        ("EVENT call.new extra k=1", "unexpected 'extra' in the EVENT line", None),
        ("EVENT call.new event=x", "both a event name and event=", None),
        ("#t OK stray k=1", "unexpected 'stray' in the OK line", "t"),
        ("#t ERR msg=x", "ERR line without code=", "t"),
        ('#t OK a="open', "unterminated quote starting at column 9", "t"),
        ("#t OK a=1 a=2", "duplicate key 'a' at column 11", "t"),
        ("", "empty line", None),
    ],
)
def test_bad_text_server_lines_name_the_problem(line, fragment, tag):
    error = parse_server_line(line)
    assert isinstance(error, DecodeError) and error.code == "bad_syntax"
    assert fragment in error.msg
    assert error.tag == tag


@pytest.mark.parametrize(
    ("line", "fragment", "tag"),
    [
        ('{"type": "OK",', "not valid JSON: Expecting property name", None),
        ("OK pong=true", "not valid JSON: Expecting value at column 1", None),
        ("[1]", "must be an object, got an array", None),
        ('{"tag": "t", "x": 1}', '"type" is missing', "t"),
        ('{"type": 1}', '"type" is a number, not a string', None),
        ('{"type": "YES", "tag": "t"}', "unknown \"type\" 'YES'", "t"),
        ('{"type": "OK", "tag": "a b"}', "bad tag 'a b'", None),
        ('{"type": "OK", "x": {"y": 1}}', "nested value for 'x' (an object)", None),
        ('{"type": "OK", "X": 1}', "bad field name 'X'", None),
        ('{"type": "OK", "a": 1, "a": 2}', "duplicate key 'a'", None),
        ('{"type": "OK", "n": NaN}', "NaN", None),
        ('{"type": "EVENT", "call": "1"}', 'EVENT line without a string "event"', None),
        ('{"type": "ERR", "tag": "t", "msg": "x"}', 'ERR line without a string "code"', "t"),
    ],
)
def test_bad_json_server_lines_name_the_problem(line, fragment, tag):
    error = parse_server_line(line, json_mode=True)
    assert isinstance(error, DecodeError) and error.code == "bad_syntax"
    assert fragment in error.msg
    assert error.tag == tag


def test_a_server_line_that_is_not_utf8_names_the_byte_and_keeps_the_tag():
    assert parse_server_line(b"#t OK a=caf\xe9\n") == DecodeError(
        "bad_syntax", "line is not valid UTF-8 (byte 0xe9 at offset 11)", "t"
    )


def test_a_json_integer_tag_in_a_server_line_is_read_as_text():
    got = parse_server_line('{"type":"END","tag":7,"count":0}', json_mode=True)
    assert got == ServerLine(LineKind.END, {"count": 0}, "7")


@given(cuts=st.lists(st.integers(0, 120), max_size=8), json_mode=st.booleans())
def test_the_server_stream_decodes_the_same_however_it_is_split(cuts, json_mode):
    data = b"".join(
        [
            encode_reply("HELLO", {"version": "switchd/9", "proto": 1}, json_mode=json_mode),
            encode_reply("ITEM", {"s": "a b\nc"}, tag="x", json_mode=json_mode),
            b"\r\n",
            encode_reply("END", {"count": 1}, tag="x", json_mode=json_mode),
            encode_reply("EVENT", {"event": "call.new", "n": 1.5}, json_mode=json_mode),
            encode_error("busy", "no trunk", tag="y", json_mode=json_mode)[:-1],  # no LF
        ]
    )
    whole = ServerLineDecoder()
    whole.json_mode = json_mode
    expected = whole.feed(data + b"\n")
    assert [x.kind for x in expected] == [
        LineKind.HELLO, LineKind.ITEM, LineKind.END, LineKind.EVENT, LineKind.ERR
    ]  # fmt: skip
    decoder = ServerLineDecoder()
    decoder.json_mode = json_mode
    got, last = [], 0
    for cut in sorted(cuts):
        got += decoder.feed(data[last:cut])
        last = max(last, cut)
    assert got + decoder.feed(data[last:]) + decoder.feed_eof() == expected


def test_the_server_stream_has_a_line_limit_too():
    decoder = ServerLineDecoder(max_line_bytes=32)
    got = decoder.feed(b"#big OK v=" + b"x" * 40 + b"\n#s OK\n")
    assert [type(x) for x in got] == [DecodeError, ServerLine]
    assert got[0].code == "line_too_long" and got[0].tag == "big"
    assert got[1] == ServerLine(LineKind.OK, {}, "s")


def test_the_framer_lets_a_client_switch_to_json_between_two_lines_of_one_read():
    data = b'#1 OK format=json\r\n\n{"type":"OK","tag":"2","pong":true}\n'
    framer = LineFramer()
    raw = framer.feed(data)
    assert raw == [b"#1 OK format=json", b'{"type":"OK","tag":"2","pong":true}']
    assert parse_server_line(raw[0]) == ServerLine(LineKind.OK, {"format": "json"}, "1")
    assert parse_server_line(raw[1], json_mode=True) == ServerLine(
        LineKind.OK, {"pong": True}, "2"
    )


# --- requests out (the client side) -----------------------------------------------

request_values = any_text | tricky_text | st.integers() | st.booleans()


@given(
    verb=verbs,
    args=st.dictionaries(keys, request_values, max_size=5),
    positional=st.lists(any_text | tricky_text, max_size=3),
    tag=st.none() | tags,
)
def test_every_text_request_decodes_back_exactly(verb, args, positional, tag):
    line = encode_request(verb, args, positional, tag=tag)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    got = only(LineDecoder(max_line_bytes=1 << 16).feed(line))
    text = {k: v if isinstance(v, str) else quote(v) for k, v in args.items()}
    assert got == Request(verb.upper(), text, tuple(positional), tag)


@given(
    verb=verbs,
    args=st.dictionaries(keys.filter(lambda k: k != "verb"), request_values | st.none(),
                         max_size=5),
    tag=st.none() | tags,
)
def test_every_json_request_decodes_back_exactly(verb, args, tag):
    line = encode_request(verb, args, tag=tag, json_mode=True)
    decoder = LineDecoder(max_line_bytes=1 << 16)
    decoder.json_mode = True
    text = {k: v if isinstance(v, str) else quote(v) for k, v in args.items() if v is not None}
    assert only(decoder.feed(line)) == Request(verb.upper(), text, (), tag)


@given(value=st.floats(allow_nan=False, allow_infinity=False), json_mode=st.booleans())
def test_request_floats_are_sent_exactly_not_rounded(value, json_mode):
    decoder = LineDecoder()
    decoder.json_mode = json_mode
    got = only(decoder.feed(encode_request("SET", {"x": value}, json_mode=json_mode)))
    assert float(got.args["x"]) == value


def test_request_arguments_of_none_are_left_out():
    assert encode_request("PING", {"a": None, "b": 1}, tag="t") == b"#t PING b=1\n"


@pytest.mark.parametrize(
    ("verb", "args", "positional", "tag", "json_mode", "fragment"),
    [
        ("P NG", {}, (), None, False, "bad verb"),
        ("PING", {"Bad": 1}, (), None, False, "bad key 'Bad'"),
        ("PING", {}, (), "#1", False, "bad tag"),
        ("PING", {"x": float("nan")}, (), None, False, "cannot send the float nan"),
        ("PING", {"x": float("inf")}, (), None, True, "cannot send the float inf"),
        ("HELP", {}, ("CALLS",), None, True, "no positional arguments"),
        ("HELP", {"verb": "CALLS"}, (), None, True, "key 'verb' cannot be sent in JSON mode"),
    ],
)
def test_encode_request_refuses_what_the_wire_cannot_carry(
    verb, args, positional, tag, json_mode, fragment
):
    with pytest.raises(ValueError, match=fragment):
        encode_request(verb, args, positional, tag=tag, json_mode=json_mode)


def test_an_over_long_line_is_refused_naming_its_verb_and_tag_when_visible():
    from switchd.cti.codec import LineDecoder

    d = LineDecoder(max_line_bytes=64)
    (err,) = d.feed(b"#t1 route.reply call=x balance=" + b"9" * 100 + b"\n")
    assert (err.code, err.tag) == ("line_too_long", "t1")
    assert err.msg.startswith("the ROUTE.REPLY line is longer than 64 bytes")
    (err,) = d.feed(b"\x01" * 100 + b"\n")
    assert err.msg.startswith("line is longer than 64 bytes")
