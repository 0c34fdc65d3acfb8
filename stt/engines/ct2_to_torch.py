"""Turn a CTranslate2 Whisper model directory into an openai-whisper checkpoint.

The service ships its weights only as CTranslate2 conversions (``model.bin`` + ``config.json``), but the
openai-whisper engine needs a PyTorch ``{"dims": ..., "model_state_dict": ...}`` checkpoint. Rather than
depend on a second download, we read CTranslate2's binary format directly and undo the converter's changes:

* names: CTranslate2 specs (``encoder/layer_0/self_attention/linear_0/weight``) -> openai-whisper modules
  (``encoder.blocks.0.attn.query.weight``);
* fusion: CTranslate2 stacks q/k/v of self-attention in one linear layer, and k/v of cross-attention in
  another; openai-whisper keeps them separate and its key projection has no bias (the converter filled
  zeros in, which we drop);
* quantization: int8/int16 weights carry a ``<name>_scale`` variable; float16/bfloat16 are widened.

The layout of ``model.bin`` follows ``ctranslate2/specs/model_spec.py`` (``LayerSpec._serialize``); the
name mapping follows ``ctranslate2/converters/transformers.py`` (``WhisperLoader``/``BartLoader``).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import mmap
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("stt.engines.ct2_to_torch")

# model.bin versions whose variable records carry (dtype id, byte count); older ones stored an item size and
# predate CTranslate2's Whisper support, so they cannot hold a model we could convert.
_MIN_BINARY_VERSION = 4
_MAX_BINARY_VERSION = 6
# Order of CTranslate2's DataType enum (see _dtype_to_type_id in model_spec.py). bfloat16 has no numpy dtype:
# it is read as raw uint16 and widened by hand.
_DTYPES = (np.dtype("<f4"), np.dtype("i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<f2"), np.dtype("<u2"))
_BFLOAT16_ID = 5
_WHISPER_SPEC = "WhisperSpec"
# Every released Whisper size uses 64-dimensional attention heads; only needed when the spec lacks num_heads.
_HEAD_DIM = 64
# openai-whisper's audio context (30 s of 10 ms frames after the stride-2 conv); used if encodings are absent.
_DEFAULT_AUDIO_CTX = 1500


class _Reader:
    """Sequential little-endian reader over a buffer; CTranslate2 writes native order, i.e. little-endian
    on every platform it supports."""

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer
        self.offset = 0

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.buffer, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        # Length prefix counts the trailing NUL that the writer appends.
        length = self.unpack("H")
        raw = bytes(self.buffer[self.offset : self.offset + length - 1])
        self.offset += length
        return raw.decode("utf-8")

    def array(self, dtype_id: int, shape: tuple[int, ...], num_bytes: int) -> np.ndarray:
        dtype = _DTYPES[dtype_id]
        count = num_bytes // dtype.itemsize
        if count != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"model.bin: {num_bytes} bytes do not match shape {shape} of {dtype}")
        # Copy so the result outlives the mmap it was read from.
        value = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.offset).reshape(shape).copy()
        self.offset += num_bytes
        if dtype_id == _BFLOAT16_ID:
            value = (value.astype(np.uint32) << 16).view(np.float32)
        return value


def _read_ct2_model(model_bin: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """Parse model.bin into (spec name, spec revision, variables), aliases resolved."""
    with model_bin.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        reader = _Reader(buffer)
        version = reader.unpack("I")
        if not _MIN_BINARY_VERSION <= version <= _MAX_BINARY_VERSION:
            raise ValueError(f"{model_bin}: unsupported CTranslate2 binary version {version}")
        spec_name = reader.string()
        revision = reader.unpack("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(reader.unpack("I")):
            name = reader.string()
            rank = reader.unpack("B")
            shape = tuple(reader.unpack("I") for _ in range(rank))
            dtype_id = reader.unpack("B")
            if dtype_id >= len(_DTYPES):
                raise ValueError(f"{model_bin}: unknown dtype id {dtype_id} for {name}")
            num_bytes = reader.unpack("I")
            variables[name] = reader.array(dtype_id, shape, num_bytes)
        # The writer replaces duplicated tensors (e.g. the tied output projection) by a reference to the
        # alphabetically first copy.
        for _ in range(reader.unpack("I")):
            alias = reader.string()
            target = reader.string()
            variables[alias] = variables[target]
        if reader.offset != len(buffer):
            raise ValueError(f"{model_bin}: {len(buffer) - reader.offset} trailing bytes; file corrupt?")
    return spec_name, revision, variables


def read_ct2_variables(model_bin: Path) -> dict[str, np.ndarray]:
    """Read every variable of a CTranslate2 ``model.bin``, keyed by its spec path (``encoder/conv1/weight``).

    Values keep their stored dtype (int8 weights next to their ``*_scale``, float16, ...; bfloat16 comes back
    as float32 since numpy has no bfloat16). Scalars such as ``encoder/num_heads`` are 0-d arrays. Aliases
    map to the same array object as their target.
    """
    return _read_ct2_model(Path(model_bin))[2]


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return float32 weights, applying ``<name>_scale`` to quantized integer tensors.

    CTranslate2 stores ``q = round(w * scale)``: one scale per output row for int8 (conv weights are
    flattened to 2-D first), a single scalar for int16.
    """
    result: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in variables:
            continue
        scale = variables.get(name + "_scale")
        if scale is not None and value.dtype.kind == "i":
            scale = scale.astype(np.float32).reshape(scale.shape + (1,) * (value.ndim - scale.ndim))
            value = value.astype(np.float32) / scale
        elif value.dtype.kind == "f":
            value = value.astype(np.float32, copy=False)
        result[name] = value
    return result


def _num_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"{stack} layers are not numbered 0..N-1: {sorted(indices)}")
    return len(indices)


def _num_heads(variables: dict[str, np.ndarray], stack: str, width: int) -> int:
    stored = variables.get(f"{stack}/num_heads")
    if stored is not None:
        return int(stored)
    return width // _HEAD_DIM


def _dims(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper's ModelDimensions, read off tensor shapes (plain ints so torch.load(weights_only) works)."""
    conv1 = variables["encoder/conv1/weight"]  # (n_audio_state, n_mels, kernel)
    embeddings = variables["decoder/embeddings/weight"]  # (n_vocab, n_text_state)
    audio_positions = variables.get("encoder/position_encodings/encodings")
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(audio_positions.shape[0]) if audio_positions is not None else _DEFAULT_AUDIO_CTX,
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": _num_heads(variables, "encoder", conv1.shape[0]),
        "n_audio_layer": _num_layers(variables, "encoder"),
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": _num_heads(variables, "decoder", embeddings.shape[1]),
        "n_text_layer": _num_layers(variables, "decoder"),
    }


def _sinusoids(length: int, channels: int, max_timescale: float = 10000) -> np.ndarray:
    """Same table as whisper.model.sinusoids, for conversions that did not store the encoder's encodings."""
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = np.exp(-log_timescale_increment * np.arange(channels // 2))
    scaled_time = np.arange(length)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1).astype(np.float32)


def _map_weights(v: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
    """CTranslate2 spec names -> openai-whisper state_dict names, un-fusing attention projections."""
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/weight"]
        out[f"{dst}.bias"] = v[f"{src}/bias"]

    def layer_norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/gamma"]
        out[f"{dst}.bias"] = v[f"{src}/beta"]

    def split_linear(dsts: list[str], src: str) -> None:
        # Rows are [q; k; v] (or [k; v]) in that order; "key" gets no bias in openai-whisper.
        weights = np.split(v[f"{src}/weight"], len(dsts))
        biases = np.split(v[f"{src}/bias"], len(dsts))
        for dst, weight, bias in zip(dsts, weights, biases):
            out[f"{dst}.weight"] = weight
            if not dst.endswith(".key"):
                out[f"{dst}.bias"] = bias

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        layer_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")
    audio_positions = v.get("encoder/position_encodings/encodings")
    if audio_positions is None:
        audio_positions = _sinusoids(dims["n_audio_ctx"], dims["n_audio_state"])
    out["encoder.positional_embedding"] = audio_positions
    for i in range(dims["n_audio_layer"]):
        dst, src = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        split_linear([f"{dst}.attn.{p}" for p in ("query", "key", "value")], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        mlp(dst, src)
    layer_norm("encoder.ln_post", "encoder/layer_norm")

    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        dst, src = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        split_linear([f"{dst}.attn.{p}" for p in ("query", "key", "value")], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        split_linear([f"{dst}.cross_attn.query"], f"{src}/attention/linear_0")
        split_linear([f"{dst}.cross_attn.{p}" for p in ("key", "value")], f"{src}/attention/linear_1")
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        layer_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        mlp(dst, src)
    layer_norm("decoder.ln", "decoder/layer_norm")
    return out


def _check_tied_projection(v: dict[str, np.ndarray]) -> None:
    """openai-whisper computes logits with the token embedding; refuse models whose output layer differs.

    Runs on the raw variables: the writer aliases the projection to the embedding before quantizing, so in
    int8 files only the embedding carries a ``weight_scale``.
    """
    projection = v.get("decoder/projection/weight")
    embedding = v["decoder/embeddings/weight"]
    if projection is not None and projection is not embedding:
        scales = (v.get("decoder/projection/weight_scale"), v.get("decoder/embeddings/weight_scale"))
        same_scales = scales[0] is None and scales[1] is None or (
            scales[0] is not None and scales[1] is not None and np.array_equal(*scales)
        )
        if not (np.array_equal(projection, embedding) and same_scales):
            raise ValueError("decoder projection is not tied to the token embedding; openai-whisper cannot run it")
    bias = v.get("decoder/projection/bias")
    if bias is not None and np.any(bias):
        raise ValueError("decoder projection has a bias; openai-whisper cannot represent it")


def _alignment_heads_dump(config: dict[str, Any], dims: dict[str, int]) -> bytes | None:
    """config.json's [layer, head] pairs in the gzip+base85 boolean-mask form of Whisper.set_alignment_heads.

    The buffer is non-persistent in openai-whisper, so it cannot live in the state_dict; callers apply it
    with ``model.set_alignment_heads(checkpoint["alignment_heads"])`` (see load_whisper_model).
    """
    pairs = config.get("alignment_heads")
    if not pairs:
        return None  # openai-whisper's default (last half of the decoder layers) then applies
    mask = np.zeros((dims["n_text_layer"], dims["n_text_head"]), dtype=bool)
    for layer, head in pairs:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def convert_ct2_to_openai_whisper(model_dir: Path, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Build an openai-whisper checkpoint from a CTranslate2 Whisper directory (``model.bin``, ``config.json``).

    Returns ``{"dims": {...}, "model_state_dict": {...}, "alignment_heads": bytes}``: the first two are what
    openai-whisper's own ``.pt`` files hold, so ``whisper.load_model(path)`` accepts the saved result; the
    third (absent when config.json has none) feeds ``Whisper.set_alignment_heads`` for word timestamps.
    Tensors default to float32, the dtype openai-whisper computes in on CPU.
    """
    model_dir = Path(model_dir)
    spec_name, revision, raw = _read_ct2_model(model_dir / "model.bin")
    if spec_name != _WHISPER_SPEC:
        raise ValueError(f"{model_dir}: expected a {_WHISPER_SPEC} model, got {spec_name!r} (revision {revision})")
    _check_tied_projection(raw)
    variables = _dequantize(raw)
    dims = _dims(variables)
    state_dict = {
        name: torch.from_numpy(np.ascontiguousarray(value)).to(dtype)
        for name, value in _map_weights(variables, dims).items()
    }
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state_dict}
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    alignment_heads = _alignment_heads_dump(config, dims)
    if alignment_heads is not None:
        checkpoint["alignment_heads"] = alignment_heads
    return checkpoint


def ensure_openai_checkpoint(model_dir: Path, cache_path: Path) -> Path:
    """Return ``cache_path``, converting ``model_dir`` into it first unless an up-to-date copy exists.

    The file is written to a temporary name beside it and renamed into place, so a crash or a concurrent
    server never leaves a truncated checkpoint behind (concurrent converters just race to an identical file).
    A cache older than ``model.bin`` is treated as stale.
    """
    model_dir, cache_path = Path(model_dir), Path(cache_path)
    model_bin = model_dir / "model.bin"
    if cache_path.exists() and cache_path.stat().st_mtime >= model_bin.stat().st_mtime:
        return cache_path
    log.info("converting %s to an openai-whisper checkpoint at %s", model_dir, cache_path)
    checkpoint = convert_ct2_to_openai_whisper(model_dir)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_path.parent, prefix=f".{cache_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, cache_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return cache_path


def load_whisper_model(checkpoint_path: Path, device: str = "cpu") -> Any:
    """Load a checkpoint written by ensure_openai_checkpoint as a ``whisper.model.Whisper``, alignment heads set.

    (``whisper.load_model(path)`` also works but keeps the default alignment heads.)
    """
    from whisper.model import ModelDimensions, Whisper  # heavy import, only needed by the torch engine

    checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    if checkpoint.get("alignment_heads") is not None:
        model.set_alignment_heads(checkpoint["alignment_heads"])
    return model.to(device)


__all__ = [
    "read_ct2_variables",
    "convert_ct2_to_openai_whisper",
    "ensure_openai_checkpoint",
    "load_whisper_model",
]
