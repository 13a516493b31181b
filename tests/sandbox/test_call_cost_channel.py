"""The channel reads ahead (one read can hold a reply and the frame behind it) and still takes every frame
whole, in order, from its one writer; ``send`` writes a request and the frames behind it at once."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.sandbox.channel import Channel, wall
from autograder.sandbox.errors import BrokenReply, StudentCrashed
from autograder.sandbox.runtime import frames

MESSAGES = st.lists(st.dictionaries(st.sampled_from(["id", "ok", "value"]),
                                    st.one_of(st.integers(-5, 5), st.text(max_size=40), st.none()), min_size=1),
                    min_size=1, max_size=6)


def _pair(max_bytes: int = 2**16) -> tuple[Channel, socket.socket]:
    ours, theirs = socket.socketpair()
    return Channel(ours, max_bytes), theirs


@settings(max_examples=80, deadline=None)
@given(MESSAGES, st.lists(st.integers(1, 64), max_size=12))
def test_frames_come_out_whole_however_the_bytes_were_written(messages, cuts):
    channel, theirs = _pair()
    data = b"".join(frames.encode_frame(m) for m in messages)
    try:
        at = 0
        for cut in cuts:
            theirs.sendall(data[at:at + cut])
            at += cut
        theirs.sendall(data[at:])
        assert [channel.receive(wall(5), "test") for _ in messages] == messages
    finally:
        channel.close()
        theirs.close()


def test_a_frame_behind_another_waits_in_the_channel_until_asked_for():
    channel, theirs = _pair()
    try:
        theirs.sendall(frames.encode_frame({"id": 1}) + frames.encode_frame({"id": 2}))
        assert channel.receive(wall(5), "test") == {"id": 1}
        theirs.close()  # the second frame was read with the first: the end of the socket does not lose it
        assert channel.receive(wall(5), "test") == {"id": 2}
        with pytest.raises(StudentCrashed):
            channel.receive(wall(5), "test")
    finally:
        channel.close()


def test_bytes_of_another_writer_behind_a_frame_break_the_protocol():
    channel, theirs = _pair()
    try:
        theirs.sendall(frames.encode_frame({"id": 1}))
        assert channel.receive(wall(5), "test") == {"id": 1}  # the channel is bound to this process
        pid = os.fork()
        if pid == 0:
            try:
                theirs.sendall(frames.encode_frame({"id": 2}))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        with pytest.raises(BrokenReply, match="another process"):
            channel.receive(wall(5), "test")
    finally:
        channel.close()
        theirs.close()


def test_the_size_limit_holds_for_a_frame_read_ahead():
    channel, theirs = _pair(max_bytes=100)
    try:
        theirs.sendall(frames.encode_frame({"id": 1}) + frames.encode_frame({"v": "x" * 200}))
        assert channel.receive(wall(5), "test") == {"id": 1}
        with pytest.raises(BrokenReply, match="over the 100-byte limit"):
            channel.receive(wall(5), "test")
    finally:
        channel.close()
        theirs.close()


def test_send_writes_the_frames_behind_a_request_in_order():
    channel, theirs = _pair()
    try:
        channel.send({"op": "call", "id": 1}, 5, "test", then=({"op": "describe", "names": [], "id": 2},))
        assert frames.read_frame(theirs.fileno()) == {"op": "call", "id": 1}
        assert frames.read_frame(theirs.fileno()) == {"op": "describe", "names": [], "id": 2}
    finally:
        channel.close()
        theirs.close()
