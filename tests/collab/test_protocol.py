"""collab.protocol refuses every malformed message with a documented code, never a crash.

Each case here is one the fuzzer (tests/collab/test_fuzz.py) found crashing a live server.
"""

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
