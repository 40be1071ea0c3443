"""Photos sent with a report or with a finished ticket: stored under data_dir/uploads after a
size limit and a check of the file's own bytes (JPEG, PNG, WebP). Never trusts the file name or
the browser's content type, and never serves a file to someone who is not logged in.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from hub.settings import get_settings

MAX_BYTES = 5 * 1024 * 1024
KINDS = {b"\xff\xd8\xff": ("jpg", "image/jpeg"), b"\x89PNG\r\n\x1a\n": ("png", "image/png")}


class UploadRejected(ValueError):
    pass


def upload_dir() -> Path:
    d = Path(get_settings().data_dir) / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sniff(head: bytes) -> tuple[str, str] | None:
    for magic, kind in KINDS.items():
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", "image/webp"
    return None


async def save_upload(upload) -> str:
    """Store an UploadFile; returns the URL path (/lampiran/<name>) to keep on the ticket."""
    data = await upload.read(MAX_BYTES + 1)
    if not data:
        raise UploadRejected("Berkas foto kosong.")
    if len(data) > MAX_BYTES:
        raise UploadRejected(f"Foto terlalu besar (maksimal {MAX_BYTES // (1024 * 1024)} MB).")
    kind = sniff(data[:16])
    if kind is None:
        raise UploadRejected("Berkas harus berupa foto JPEG, PNG atau WebP.")
    name = f"{secrets.token_urlsafe(12)}.{kind[0]}"
    (upload_dir() / name).write_bytes(data)
    return f"/lampiran/{name}"


def mime_of(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    return {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}.get(ext, "application/octet-stream")
