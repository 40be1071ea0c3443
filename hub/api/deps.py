"""Shared request dependencies: a DB session per request and the caller's principal."""
from __future__ import annotations

from typing import Iterator

from fastapi import Depends, Request
from sqlmodel import Session

from starlette.concurrency import run_in_threadpool

from hub.auth import Principal, authenticate, cached_key_principal, presented_key
from hub.config import RegencyConfig
from hub.config import regency_config as _regency_config
from hub.db import get_engine, writer
from hub.settings import get_settings


def db_session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


def write_session() -> Iterator[Session]:
    """For routes that change state: on SQLite the transaction takes the write lock up front."""
    with Session(writer(), expire_on_commit=False) as session:
        yield session


def _authenticate_sync(request: Request) -> Principal:
    with Session(get_engine()) as session:
        return authenticate(request, session)


async def principal(request: Request) -> Principal:
    """Who is calling. A recently verified API key is answered from memory on the event loop
    (no thread hop, no query: the intake hot path); anything else is checked in a worker thread
    with its own short session, so no connection is held while a request waits."""
    key = presented_key(request)
    if key:
        hit = cached_key_principal(key)
        if hit is not None:
            return hit
    return await run_in_threadpool(_authenticate_sync, request)


async def regency_config() -> RegencyConfig:
    return _regency_config(str(get_settings().config_dir))
