"""collab.protocol refuses every malformed message with a documented code, never a crash.

Each case here is one the fuzzer (tests/collab/test_fuzz.py) found crashing a live server.
"""

import json

import pytest

from collab.protocol import Limits, ProtocolError, parse_message


@pytest.mark.parametrize("frame", ['{"type": []}', '{"type": {"a": 1}}', '{"type": [1, 2]}'])
def test_a_type_that_is_not_a_string_is_a_bad_message(frame):
    with pytest.raises(ProtocolError) as refused:
        parse_message(frame, Limits())
    assert refused.value.code == "bad_message"


def test_an_unknown_type_is_named_briefly():
    with pytest.raises(ProtocolError) as refused:
        parse_message('{"type": "' + "t" * 200_000 + '"}', Limits())
    assert refused.value.code == "bad_message" and len(refused.value.message) < 100


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_survives_a_type_that_is_not_a_string(connect, document, owner):
    client = await connect(owner, document)
    await client.send(type=["submit"], seq=1, version=0, delta=[{"insert": "x"}])
    assert (await client.receive_type("error"))["code"] == "bad_message"
    await client.submit(0, [{"insert": "still here"}])
    assert await client.receive_type("ack") == {"type": "ack", "seq": 1, "version": 1}


def submit(delta, seq=3):
    return json.dumps({"type": "submit", "seq": seq, "version": 0, "delta": delta})


@pytest.mark.parametrize(
    "delta",
    [
        [{"insert": "a\u0000b"}],
        [{"insert": "x", "attributes": {"link": "https://example.com/\u0000"}}],
        [{"retain": 1, "attributes": {"link": "mailto:\u0000@example.com"}}],
    ],
)
def test_a_nul_character_is_a_bad_delta_naming_its_edit(delta):
    """PostgreSQL's jsonb cannot store U+0000: accepted, the edit failed its whole commit."""
    with pytest.raises(ProtocolError) as refused:
        parse_message(submit(delta), Limits())
    assert (refused.value.code, refused.value.seq) == ("bad_delta", 3)


@pytest.mark.parametrize(
    "client_id", ["client\u0000id", "client\tid-1", "client-id\u007f", "c\nlient-id"]
)
def test_a_client_id_must_be_printable(client_id):
    """It is stored with every edit, and PostgreSQL's text cannot hold a NUL."""
    hello = json.dumps({"type": "hello", "client_id": client_id, "version": None})
    with pytest.raises(ProtocolError) as refused:
        parse_message(hello, Limits())
    assert refused.value.code == "bad_message"


def test_printable_text_and_client_ids_pass():
    hello = parse_message('{"type": "hello", "client_id": "c-3k2j 9x~!", "version": 4}', Limits())
    assert hello.client_id == "c-3k2j 9x~!"
    edit = parse_message(submit([{"insert": "tab\there\n😀"}]), Limits())
    assert edit.delta.ops == [{"insert": "tab\there\n😀"}]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_edit_with_a_nul_is_refused_and_the_next_one_commits(connect, document, owner):
    client = await connect(owner, document)
    await client.submit(0, [{"insert": "nul\u0000"}])
    refused = await client.receive_type("error")
    assert (refused["code"], refused["seq"]) == ("bad_delta", 1)
    await client.submit(0, [{"insert": "fine"}])
    assert await client.receive_type("ack") == {"type": "ack", "seq": 2, "version": 1}
