"""Speaker diarization: who spoke when, and which words each speaker said.

``Diarizer.label(transcript, audio, options)`` is the whole interface for the faces' service: it finds speaker
turns in the audio (speech detector + speaker embeddings + clustering, ``pipeline``) and writes a speaker on
every word and segment (``assign``). Blocking: run it only inside a scheduler job.
"""

from stt.diarization.types import DiarizeOptions, Turn

__all__ = ["DiarizeOptions", "Turn"]
