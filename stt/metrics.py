"""Prometheus metrics (prometheus-client): what the server did, and its state at scrape time.

No HTTP here (the inference modules count their batches): the HTTP side labels requests with their face.
Event metrics (requests, latencies, audio and engine seconds, batches, live final delays) are process-wide:
one server is one process, and the batcher that forms batches has no app at hand. State (queue depth,
running jobs, open live streams, readiness) is read from the app when Prometheus scrapes, by a collector each
app registers in its own registry, so it follows whatever the scheduler becomes. Labels are bounded: the
face, the route *pattern* (``unmatched`` for 404s, never the raw path), the status, an error code from a
fixed set; never request ids, tokens or client addresses.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Up to 4 h: an upload or a stream may last that long (limits.max_audio_seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 14400)
FINAL_DELAY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
AUTH_FAILURE_CODES = {"unauthorized": "missing", "forbidden": "invalid"}

REQUESTS = Counter("stt_http_requests", "HTTP requests answered, by API face, route pattern and status",
                   ["face", "route", "method", "status"], registry=None)
LATENCY = Histogram("stt_http_request_duration_seconds", "Time from request to answer", ["face"],
                    buckets=LATENCY_BUCKETS, registry=None)
QUEUE_WAIT = Histogram("stt_queue_wait_seconds", "Time a request's job waited for an inference worker",
                       ["face"], buckets=LATENCY_BUCKETS, registry=None)
ENGINE_SECONDS = Counter("stt_engine_seconds", "Seconds spent in the engine for requests", ["face"],
                         registry=None)
AUDIO_SECONDS = Counter("stt_audio_seconds", "Seconds of audio transcribed (answered 200)", ["face"],
                        registry=None)
BATCH_WINDOWS = Histogram("stt_batch_windows", "Windows decoded together in one engine batch",
                          buckets=BATCH_BUCKETS, registry=None)
LIVE_FINAL_DELAY = Histogram("stt_live_final_delay_seconds",
                             "Live streams: from the arrival of an utterance's last audio to its final result",
                             buckets=FINAL_DELAY_BUCKETS, registry=None)
AUTH_FAILURES = Counter("stt_auth_failures", "Requests refused for a missing or invalid token", ["reason"],
                        registry=None)
THROTTLED = Counter("stt_auth_throttled", "Requests refused with 429 after too many failed authentications",
                    registry=None)
REJECTED_UPLOADS = Counter("stt_uploads_rejected", "Uploads refused before transcription, by error code",
                           ["face", "reason"], registry=None)
# The model label is a name from the config's asr.models (bounded by the config, never by requests).
MODEL_LOADS = Counter("stt_model_loads", "Models loaded (on first use, or at start for a pinned default)",
                      ["model"], registry=None)
MODEL_UNLOADS = Counter("stt_model_unloads", "Models unloaded, by reason (idle past the TTL, evicted to make "
                        "room, shutdown)", ["model", "reason"], registry=None)
EVENT_METRICS: tuple[Collector, ...] = (REQUESTS, LATENCY, QUEUE_WAIT, ENGINE_SECONDS, AUDIO_SECONDS,
                                        BATCH_WINDOWS, LIVE_FINAL_DELAY, AUTH_FAILURES, THROTTLED,
                                        REJECTED_UPLOADS, MODEL_LOADS, MODEL_UNLOADS)
def observe_request(face: str, method: str, route: str | None, status: int, total_s: float,
                    audio_s: float | None, queued_s: float | None, engine_s: float | None,
                    error_code: str | None) -> None:
    """One call per answered request, from the access-log middleware; ``face``: the API face's label."""
    REQUESTS.labels(face, route or "unmatched", method, str(status)).inc()
    LATENCY.labels(face).observe(total_s)
    if queued_s is not None:
        QUEUE_WAIT.labels(face).observe(queued_s)
    if engine_s is not None:
        ENGINE_SECONDS.labels(face).inc(engine_s)
    if status == 200 and audio_s is not None:
        AUDIO_SECONDS.labels(face).inc(audio_s)
    if error_code in AUTH_FAILURE_CODES:
        AUTH_FAILURES.labels(AUTH_FAILURE_CODES[error_code]).inc()
    elif status == 429:
        THROTTLED.inc()
    elif 400 <= status < 500 and method == "POST" and error_code and face != "other":
        REJECTED_UPLOADS.labels(face, error_code).inc()


def observe_batch(windows: int) -> None:
    """One call where a batch of windows is formed for the engine."""
    BATCH_WINDOWS.observe(windows)


class ArrivalClock:
    """When each second of a live stream's audio arrived, to time its finals from the end of the speech.

    Bounded: one entry per received chunk, the oldest dropped first (a final is about recent audio)."""

    def __init__(self, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self._arrivals: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_entries)
        self._clock = clock

    def heard(self, stream_seconds: float) -> None:
        """The stream now holds ``stream_seconds`` of audio."""
        self._arrivals.append((stream_seconds, self._clock()))

    def final(self, end_s: float) -> None:
        """A final result ending at ``end_s`` (stream time) was sent now."""
        arrivals = self._arrivals
        if arrivals and len(arrivals) == arrivals.maxlen and arrivals[0][0] >= end_s:
            return  # that audio arrived before the oldest entry kept: its arrival time is unknown
        for seconds, arrived in arrivals:
            if seconds >= end_s:
                LIVE_FINAL_DELAY.observe(max(0.0, self._clock() - arrived))
                return


State = Callable[[], dict[str, float]]


class _StateCollector(Collector):
    """Gauges read at scrape time from ``state()``: name -> value."""

    HELP = {
        "stt_queue_depth": "Jobs waiting for an inference worker",
        "stt_jobs_running": "Jobs running on inference workers",
        "stt_live_streams_open": "Live WebSocket streams open",
        "stt_ready": "1 when the server accepts work (the /ready check), else 0",
        "stt_models_loaded": "Models in memory (asr.models), loading ones included",
    }

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        values = self._state()
        for name, help_text in self.HELP.items():
            yield GaugeMetricFamily(name, help_text, value=values.get(name, 0.0))


def app_registry(state: State) -> CollectorRegistry:
    """The registry one app serves at /metrics: the process's event metrics and this app's state."""
    registry = CollectorRegistry(auto_describe=True)
    for metric in EVENT_METRICS:
        registry.register(metric)
    registry.register(_StateCollector(state))
    return registry
