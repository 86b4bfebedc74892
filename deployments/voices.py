"""Saved voices: a reference voice validated, codec-encoded and stored once, then named by requests.

The store is a directory, local by default or any fsspec URL (s3://bucket/voices, gs://...), so
every replica of a cluster sees the same voices. One voice is one `.npz` object holding the 16 kHz
reference samples, its transcript and its codec codes (with the codec's name: requests use the
codes only while the server runs that codec, and encode the samples again otherwise). A write goes to a scratch name and is then
moved into place: on a local disk the move is an atomic rename, and an object store shows an
object whole or not at all, so a reader never sees half a voice and a failed write loses nothing.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from dataclasses import dataclass

import fsspec
import numpy as np

VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NO_VOICE = "default"  # the configured default voice (lm.default_voice), or no reference if none is
SUFFIX = ".npz"


class VoiceNameError(ValueError):
    """A voice name that cannot be stored; the message says which names can."""


class VoiceNotFound(KeyError):
    def __str__(self) -> str:
        return (f"no saved voice named {self.args[0]!r}: upload it with POST /v1/audio/voices (gRPC: CreateVoice), "
                "or list them with GET (ListVoices)")


class VoiceExists(ValueError):
    pass


@dataclass(frozen=True)
class Voice:
    name: str
    transcript: str
    audio: np.ndarray  # 16 kHz mono float32, as a checked reference
    codes: list[int]  # the codec's speech tokens for `audio`
    codec: str  # the codec model that made them: another codec encodes the audio again
    created_at: int  # unix seconds

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16_000

    def summary(self) -> dict:
        return {"id": self.name, "object": "voice", "name": self.name, "transcript": self.transcript,
                "seconds": round(self.seconds, 3), "codes": len(self.codes), "created_at": self.created_at}


def check_name(name: str) -> str:
    if not VOICE_NAME.fullmatch(name or "") or name == NO_VOICE:
        raise VoiceNameError(f"voice name {name[:80]!r} is not usable: use 1-64 letters, digits, '_', '-' or '.', "
                             f"starting with a letter or digit, and not {NO_VOICE!r}")
    return name


class VoiceStore:
    def __init__(self, url: str):
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{check_name(name)}{SUFFIX}"

    def save(self, voice: Voice) -> None:
        """Store a new voice atomically; VoiceExists if the name is taken (delete it first)."""
        path = self._path(voice.name)
        if self.fs.exists(path):
            raise VoiceExists(f"a voice named {voice.name!r} exists: DELETE /v1/audio/voices/{voice.name} first "
                              "(gRPC: DeleteVoice), or choose another name")
        scratch = f"{self.root.rstrip('/')}/.{voice.name}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(scratch, voice_to_bytes(voice))
        try:
            self.fs.mv(scratch, path)
        finally:
            if self.fs.exists(scratch):
                self.fs.rm(scratch)

    def load(self, name: str) -> Voice:
        path = self._path(name)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise VoiceNotFound(name) from None
        return voice_from_bytes(name, data)

    def names(self) -> list[str]:
        found = []
        for path in self.fs.ls(self.root, detail=False):
            base = path.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(SUFFIX) and not base.startswith("."):
                found.append(base[: -len(SUFFIX)])
        return sorted(found)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            self.fs.rm(path)
        except FileNotFoundError:
            raise VoiceNotFound(name) from None


def voice_to_bytes(voice: Voice) -> bytes:
    buffer = io.BytesIO()
    meta = {"transcript": voice.transcript, "codec": voice.codec, "created_at": voice.created_at}
    np.savez(buffer, audio=voice.audio.astype(np.float32), codes=np.asarray(voice.codes, dtype=np.int64),
             meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return buffer.getvalue()


def voice_from_bytes(name: str, data: bytes) -> Voice:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        meta = json.loads(arrays["meta"].tobytes())
        return Voice(name=name, transcript=meta["transcript"], audio=arrays["audio"],
                     codes=arrays["codes"].tolist(), codec=meta["codec"], created_at=int(meta["created_at"]))


def read_voice_file(path: str) -> Voice:
    """A voice stored alone in the store's format, e.g. the one a model folder ships as its default."""
    with fsspec.open(path, "rb") as file:
        return voice_from_bytes(path.rstrip("/").rsplit("/", 1)[-1].removesuffix(SUFFIX), file.read())


def new_voice(name: str, transcript: str, audio: np.ndarray, codes: list[int], codec: str) -> Voice:
    return Voice(name=check_name(name), transcript=transcript, audio=audio, codes=list(codes), codec=codec,
                 created_at=int(time.time()))
