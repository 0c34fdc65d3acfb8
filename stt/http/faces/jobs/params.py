"""The jobs face's own parameters (a job's transcription options are the native face's, STT_PARAMS)."""

from __future__ import annotations

from stt.http.params import OUTPUTS, Param
from stt.jobs.webhooks import URL_MAX

PAGE_MAX = 100
CALLBACK_PARAMS: tuple[Param, ...] = (
    Param("callback_url", "string", "Called (POST, signed) when the job completes or fails; its host must be in "
          "`jobs.callback_allowed_hosts`.", max_length=URL_MAX),
)
RESULT_PARAMS: tuple[Param, ...] = (
    Param("output", "string", "Format of the result (default: the job's `output`).", enum=OUTPUTS),
)
LIST_PARAMS: tuple[Param, ...] = (
    Param("limit", "integer", "Jobs per page, newest first.", default=20, minimum=1, maximum=PAGE_MAX),
    Param("before", "number", "Only jobs created before this time (`next_before` of the previous page).",
          minimum=0),
)
