"""Shared request dependencies: a DB session per request and the caller's principal."""
from __future__ import annotations

from typing import Iterator

from fastapi import Depends, Request
from sqlmodel import Session

from hub.auth import Principal, authenticate
from hub.config import RegencyConfig, regency
from hub.db import get_engine, writer
from hub.settings import get_settings


def db_session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


def write_session() -> Iterator[Session]:
    """For routes that change state: on SQLite the transaction takes the write lock up front."""
    with Session(writer(), expire_on_commit=False) as session:
        yield session


def principal(request: Request) -> Principal:
    """Who is calling. Uses its own short session, so no connection is held while a request
    waits (the intake path waits for its group commit)."""
    with Session(get_engine()) as session:
        return authenticate(request, session)


def regency_config() -> RegencyConfig:
    return regency(str(get_settings().config_dir))
