"""The live WebSocket API (Deepgram's protocol) on the real app: auth, limits, protocol, real-model streams."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, TOKEN, FakeEngine, manifest, wer
from tests.live_helpers import collect, load_pcm16, pcm16, stream, transcript, words_lost

PCM = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1"
LIVE = PCM + "&interim_results=true&punctuate=true&vad_events=true"
CLIP = "en/librispeech/1089-134686-0000.flac"  # 10.4 s, one sentence


async def refused(client: Any, path: str = PCM, **kwargs: Any) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(path, **kwargs)
    return info.value.status


# -- auth and query, before the upgrade ------------------------------------------------------------------

async def test_missing_token_is_401_before_upgrade(client: Any) -> None:
    assert await refused(client) == 401
    assert await refused(client, "/listen") == 401


async def test_wrong_tokens_are_401_before_upgrade(client: Any) -> None:
    """401 as Deepgram answers (its SDKs report "invalid credentials" only on 401)."""
    assert await refused(client, headers={"Authorization": "Token nope"}) == 401
    assert await refused(client, headers={"Authorization": "Basic abc"}) == 401
    assert await refused(client, protocols=("token", "nope")) == 401


async def test_subprotocol_token_is_accepted_and_echoed(client: Any) -> None:
    ws = await client.ws_connect(PCM, protocols=("token", TOKEN))
    assert ws.protocol == "token"
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await collect(ws)
    assert received.close_code == 1000 and received.of("Metadata")


async def test_bad_query_is_400_json_naming_the_parameter(client: Any) -> None:
    for query in ("encoding=mp3", "sample_rate=abc", "interim_results=maybe", "channels=99", "endpointing=soon",
                  "utterance_end_ms=-1"):
        name = query.split("=")[0]
        resp = await client.get(f"/listen?{query}", headers=AUTH)  # the seeds' path: the native error shape
        assert resp.status == 400, query
        body = await resp.json()
        assert body["status"] == "failed" and body["param"] == name, body
        resp = await client.get(f"/v1/listen?{query}", headers=AUTH)  # Deepgram's path: Deepgram's shape
        assert resp.status == 400, query
        assert name in (await resp.json())["err_msg"]


async def test_deepgram_parameters_we_do_not_use_are_accepted(client: Any) -> None:
    resp = await client.get("/v1/listen?model=nova-3&tier=enhanced&diarize=true", headers=AUTH)
    assert resp.status == 400  # not a WebSocket upgrade: the query itself passed
    assert "WebSocket" in (await resp.json())["err_msg"]


async def test_plain_get_without_upgrade_is_400(client: Any) -> None:
    resp = await client.get("/listen", headers=AUTH)
    assert resp.status == 400


# -- limits --------------------------------------------------------------------------------------------

async def test_streams_over_the_limit_are_closed_with_code_and_reason(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"max_streams": 1})
    first = await client.ws_connect(PCM, headers=AUTH)
    second = await client.ws_connect(PCM, headers=AUTH)
    received = await collect(second)
    assert received.close_code == 1013 and "limit is 1" in received.close_reason
    await first.send_str(json.dumps({"type": "CloseStream"}))
    assert (await collect(first)).close_code == 1000


async def test_idle_stream_is_closed_after_metadata(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"stream_idle_seconds": 1})
    ws = await client.ws_connect(PCM, headers=AUTH)
    started = asyncio.get_running_loop().time()
    received = await asyncio.wait_for(collect(ws), 10)
    assert received.close_code == 1011 and "no audio or KeepAlive" in received.close_reason
    assert 0.9 <= asyncio.get_running_loop().time() - started < 5
    assert received.messages[-1][1]["type"] == "Metadata"


async def test_keepalive_keeps_an_idle_stream_open(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"stream_idle_seconds": 1})
    ws = await client.ws_connect(PCM, headers=AUTH)
    for _ in range(4):
        await asyncio.sleep(0.5)
        await ws.send_str(json.dumps({"type": "KeepAlive"}))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    assert (await collect(ws)).close_code == 1000


async def test_max_stream_seconds_closes_with_policy_code(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"max_stream_seconds": 1})
    ws = await client.ws_connect(PCM, headers=AUTH)
    received = await stream(ws, load_pcm16(CLIP, 3), speed=0, close=False)
    assert received.close_code == 1008 and "limit of 1 s" in received.close_reason
    assert received.of("Metadata")


async def test_undecodable_container_closes_with_1007(client: Any) -> None:
    ws = await client.ws_connect("/v1/listen", headers=AUTH)
    received = await stream(ws, b"this is not audio at all" * 400, speed=0)
    assert received.close_code == 1007 and "Could not decode" in received.close_reason
    assert not received.of("Results")


# -- protocol with the fake engine (fallback decoding path, real speech detector) ------------------------

async def test_sample_rate_handshake_and_metadata(client: Any) -> None:
    clip = manifest()["en/librispeech/1089-134686-0030.flac"]
    audio = decode_audio(clip.path.read_bytes())
    import soxr
    data = pcm16(soxr.resample(audio, SAMPLE_RATE, 8000))
    ws = await client.ws_connect("/listen", headers=AUTH)
    await ws.send_str("sample rate:8000")
    received = await stream(ws, data, speed=0, chunk_bytes=1600, bytes_per_second=16000)
    assert [transcript(m) for m in received.finals] == ["hello world"]
    meta = received.messages[-1][1]
    assert meta["type"] == "Metadata" and abs(meta["duration"] - clip.seconds) < 0.05
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()


async def test_finalize_flushes_and_the_stream_goes_on(client: Any) -> None:
    ws = await client.ws_connect(PCM, headers=AUTH)
    data = load_pcm16("en/librispeech/1089-134686-0001.flac", 1.5)
    for i in range(0, len(data), 3200):
        await ws.send_bytes(data[i:i + 3200])
    await ws.send_str(json.dumps({"type": "Finalize"}))
    await ws.send_bytes(data[:3200])
    await ws.send_bytes(b"")  # an empty frame closes the stream too
    received = await collect(ws)
    assert received.close_code == 1000
    finalized = [m for m in received.finals if m["from_finalize"]]
    # The fake engine's last word ends at its window's end, as Whisper aligns a word the cut splits: the
    # Finalize's final leaves it to the speech after the cut, and the close's final says it, once.
    assert len(finalized) == 1 and transcript(finalized[0]) == "hello"
    assert [transcript(m) for m in received.finals] == ["hello", "world"]
    assert received.messages[-1][1]["type"] == "Metadata"


async def test_finalize_with_a_channel_finalizes_only_that_channel(client: Any) -> None:
    """Deepgram's ``{"type": "Finalize", "channel": n}``: only channel n's speech so far becomes a from_finalize
    final; the other channel goes on until its own Finalize. A channel the stream lacks finalizes nothing."""
    ws = await client.ws_connect(PCM.replace("channels=1", "channels=2") + "&multichannel=true", headers=AUTH)
    speech = decode_audio((AUDIO_DIR / "en/librispeech/1089-134686-0001.flac").read_bytes())[: 2 * SAMPLE_RATE]
    data = (np.clip(np.stack([speech, speech], axis=1), -1, 1) * 32767).astype("<i2").tobytes()  # mid-sentence
    for i in range(0, len(data), 6400):
        await ws.send_bytes(data[i:i + 6400])
    for message in ({"type": "Finalize", "channel": 5}, {"type": "Finalize", "channel": "1"},
                    {"type": "Finalize", "channel": 1}, {"type": "KeepAlive"}):
        await ws.send_str(json.dumps(message))
    first = json.loads((await ws.receive(timeout=30)).data)
    # "hello": the fake's last word ends at the window's end, a word the cut splits, left to the speech after it
    assert first["from_finalize"] and first["channel_index"] == [1, 2] and transcript(first) == "hello"
    with pytest.raises(TimeoutError):  # channel 0 is still speaking: nothing of it yet (passes take ms here)
        await ws.receive(timeout=1.0)
    await ws.send_str(json.dumps({"type": "Finalize"}))  # every channel: channel 0's speech, at last
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await collect(ws)
    finalized = [m for m in received.finals if m["from_finalize"]]
    assert [m["channel_index"] for m in finalized if transcript(m)] == [[0, 2]], finalized


# -- real model ----------------------------------------------------------------------------------------

@pytest.mark.model
async def test_real_time_stream_interims_then_finals_then_metadata(make_client: Any, fw_tiny: Any) -> None:
    client = await make_client(fw_tiny)
    ws = await client.ws_connect(LIVE, protocols=("token", TOKEN))
    data = load_pcm16(CLIP)
    received = await stream(ws, data, speed=1.0)  # real time, 100 ms frames, CloseStream right after
    assert received.close_code == 1000
    kinds = [m["type"] for _, m in received.messages]
    assert kinds[-1] == "Metadata" and kinds[0] == "SpeechStarted"
    first_interim = received.first_time(lambda m: m.get("type") == "Results" and not m["is_final"])
    first_final = received.first_time(lambda m: m.get("type") == "Results" and m["is_final"])
    assert first_interim is not None and first_final is not None and first_interim < first_final
    assert first_interim < 3.0  # words show while the sentence is still being spoken
    assert len(received.interims) >= 5
    reference = manifest()[CLIP].transcript
    assert wer(reference, received.final_text) <= 0.15  # tiny.en on this clip in batch: ~0.07
    assert transcript(received.finals[-1]).rstrip(".").lower().endswith("sauce")  # tail kept at CloseStream
    meta = received.of("Metadata")[0]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and abs(meta["duration"] - 10.435) < 0.01
    words = received.finals[0]["channel"]["alternatives"][0]["words"]
    assert words and all(w["start"] <= w["end"] for w in words)


@pytest.mark.model
async def test_close_right_after_last_frame_keeps_the_tail(make_client: Any, fw_tiny: Any) -> None:
    client = await make_client(fw_tiny)
    audio = decode_audio((AUDIO_DIR / "en/librispeech/1089-134686-0001.flac").read_bytes())
    end = int(np.nonzero(np.abs(audio) > 0.02)[0][-1]) + 800  # cut 50 ms after the last loud sample
    ws = await client.ws_connect(PCM, headers=AUTH)
    received = await stream(ws, pcm16(audio[:end]), speed=0)
    assert received.close_code == 1000
    assert received.final_text.rstrip(".").lower().endswith("him")  # "... his belly counselled him"


@pytest.mark.model
async def test_webm_opus_container_stream(make_client: Any, fw_tiny: Any) -> None:
    client = await make_client(fw_tiny)
    audio = decode_audio((AUDIO_DIR / "en/librispeech/1089-134686-0030.flac").read_bytes())
    ws = await client.ws_connect("/listen", headers=AUTH)  # no encoding: a container, as MediaRecorder sends
    received = await stream(ws, _webm(audio), speed=0, chunk_bytes=2000)
    assert wer("BEWARE OF MAKING THAT MISTAKE", received.final_text) == 0


@pytest.mark.model
async def test_stream_wer_is_close_to_batch_on_the_same_audio(make_client: Any, fw_base: Any) -> None:
    names = ["1089-134686-0001", "1089-134686-0003", "1089-134686-0005", "1089-134686-0030", "1089-134686-0036"]
    clips = [manifest()[f"en/librispeech/{n}.flac"] for n in names]
    audio = np.concatenate([decode_audio(c.path.read_bytes()) for c in clips])
    reference = " ".join(c.transcript for c in clips)
    client = await make_client(fw_base)
    ws = await client.ws_connect(PCM, headers=AUTH)
    received = await stream(ws, pcm16(audio), speed=2.0)
    resp = await client.post("/stt", data=pcm16_wav(audio), headers=AUTH)
    batch = (await resp.json())["text"]
    streamed, batched = wer(reference, received.final_text), wer(reference, batch)
    print(f"streamed WER {streamed:.3f} batch WER {batched:.3f}")
    assert streamed <= batched + 0.04


@pytest.mark.model
async def test_openai_whisper_engine_streams_through_the_fallback(make_client: Any, ow_base: Any) -> None:
    """An engine without batched window decoding is served one transcribe() per window."""
    client = await make_client(ow_base)
    ws = await client.ws_connect(PCM + "&punctuate=true", headers=AUTH)
    received = await stream(ws, load_pcm16("en/librispeech/1089-134686-0030.flac"), speed=0)
    assert received.close_code == 1000
    assert wer("BEWARE OF MAKING THAT MISTAKE", received.final_text) == 0
    assert received.finals[0]["channel"]["alternatives"][0]["words"]


def pcm16_wav(audio: np.ndarray) -> bytes:
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _webm(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        out = container.add_stream("libopus", rate=48000)
        out.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio[None, :] * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for resampled in av.AudioResampler(format="s16", layout="mono", rate=48000).resample(frame):
            for packet in out.encode(resampled):
                container.mux(packet)
        for packet in out.encode(None):
            container.mux(packet)
    return buf.getvalue()


async def test_server_shutdown_closes_streams_with_going_away(aiohttp_server: Any) -> None:
    from stt.http.app import create_app
    from tests.conftest import make_settings

    server = await aiohttp_server(create_app(make_settings(), engine=FakeEngine()))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.make_url(PCM), headers=AUTH)
        closing = asyncio.create_task(server.close())
        received = await asyncio.wait_for(collect(ws), 10)
        await closing
    assert received.close_code == 1001 and "shutting down" in received.close_reason


def test_stream_idle_seconds_is_validated() -> None:
    from stt.settings import ConfigError, settings_from_dict

    with pytest.raises(ConfigError, match="limits.stream_idle_seconds"):
        settings_from_dict({"limits": {"stream_idle_seconds": 0}}, env={})


# -- found in review: validated before the upgrade, bad handshakes, vanished clients ------------------------

async def test_a_language_whisper_lacks_is_400_before_the_upgrade(client: Any) -> None:
    # Accepted, it would fail every batched pass it joined, other streams' included.
    assert await refused(client, PCM + "&language=zz", headers=AUTH) == 400
    assert await refused(client, "/listen?language=xx-YY", headers=AUTH) == 400
    ws = await client.ws_connect(PCM + "&language=de-DE", headers=AUTH)
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    assert (await collect(ws)).close_code == 1000


async def test_a_bad_sample_rate_handshake_closes_with_1007(client: Any) -> None:
    for handshake in ("sample rate: abc", "sample rate: 0", "sample rate: 1000000000"):
        ws = await client.ws_connect("/listen", headers=AUTH)
        await ws.send_str(handshake)
        received = await collect(ws)
        assert received.close_code == 1007, handshake


async def test_a_vanished_container_client_leaves_no_decoding_thread(client: Any) -> None:
    import threading

    def demuxers() -> int:
        return sum(t.name == "stt-live-demux" and t.is_alive() for t in threading.enumerate())

    before = demuxers()
    ws = await client.ws_connect("/v1/listen", headers=AUTH)  # no encoding: a container stream
    await ws.send_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)  # the start of a WebM header, then nothing
    await asyncio.sleep(0.2)
    await ws.close()  # the client goes away without CloseStream
    for _ in range(50):
        if demuxers() == before:
            break
        await asyncio.sleep(0.1)
    assert demuxers() == before


# -- Finalize in the middle of speech, and utterance boundaries (real model) ----------------------------------

async def _send(ws: Any, data: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(data), chunk):
        await ws.send_bytes(data[i:i + chunk])


async def _finalize_sequence(client: Any, query: str, finalize: bool) -> Any:
    """Issue 17's sequence, sent faster than real time: 4 s of the clip, Finalize, the remaining 6.4 s,
    Finalize, 3 s of silence, CloseStream (without ``finalize``: the same audio, no Finalize)."""
    data = load_pcm16(CLIP)
    ws = await client.ws_connect(query, headers=AUTH)
    reader = asyncio.create_task(collect(ws))
    cut = 4 * SAMPLE_RATE * 2
    for part in (data[:cut], data[cut:]):
        await _send(ws, part)
        if finalize:
            await ws.send_str(json.dumps({"type": "Finalize"}))
    await _send(ws, bytes(3 * SAMPLE_RATE * 2))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    return await asyncio.wait_for(reader, 120)


@pytest.mark.model
@pytest.mark.parametrize("options", ["", "&interim_results=true&endpointing=300", "&endpointing=false"])
async def test_finalize_mid_speech_loses_nothing_after_it(make_client: Any, fw_base: Any, options: str) -> None:
    client = await make_client(fw_base)
    finalized = await _finalize_sequence(client, PCM + options, finalize=True)
    plain = await _finalize_sequence(client, PCM + options, finalize=False)
    reference = manifest()[CLIP].transcript
    assert finalized.close_code == 1000 and finalized.messages[-1][1]["type"] == "Metadata"
    first = finalized.finals[0]
    assert first["from_finalize"] and transcript(first).lower().endswith("carrots and")
    assert not first["speech_final"]  # the speaker was still talking
    text = finalized.final_text.lower()
    assert "bruised potatoes" in text and text.rstrip(".").endswith("sauce")  # the speech after Finalize
    starts = [m["start"] for m in finalized.finals]
    assert starts == sorted(starts) and starts[1] >= 4.0  # the second final starts at the cut
    assert words_lost(reference, finalized.final_text) == 0
    # One word of this 28-word clip is 3.6 points: a window cut elsewhere may hear one word otherwise
    # ("flour fatten" / "flour fat and"). bench/bench_finalize.py checks the 2-point target over many clips.
    assert wer(reference, finalized.final_text) <= wer(reference, plain.final_text) + 0.04
    assert len(finalized.finals) <= 3  # no empty or invented final in the silence after the second Finalize


@pytest.mark.model
async def test_a_new_utterance_keeps_leading_words_that_repeat_the_last_final(make_client: Any,
                                                                              fw_base: Any) -> None:
    """"... carrots and" then JFK's "And so my fellow Americans": the first word of the new utterance was
    lost (the previous text, given as the prompt, ended mid-sentence); interims showed words twice."""
    first = decode_audio((AUDIO_DIR / CLIP).read_bytes())[:4 * SAMPLE_RATE]
    jfk = decode_audio((AUDIO_DIR / "en/jfk.flac").read_bytes())
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    client = await make_client(fw_base)
    ws = await client.ws_connect(PCM + "&interim_results=true", headers=AUTH)
    received = await stream(ws, pcm16(np.concatenate([first, gap, jfk, gap])), speed=2.0)
    finals = [transcript(m) for m in received.finals]
    assert finals[0].lower().rstrip(".").endswith("carrots and"), finals
    assert finals[1].lower().startswith("and so my fellow americans"), finals
    assert wer(manifest()["en/jfk.flac"].transcript, " ".join(finals[1:])) <= 0.1
    for message in received.interims:
        words = [w["word"] for w in message["channel"]["alternatives"][0]["words"]]
        assert not any(words[i:i + n] == words[i + n:i + 2 * n] for n in (1, 2, 3, 4)
                       for i in range(len(words) - 2 * n + 1)), words  # no word or phrase twice in a row
