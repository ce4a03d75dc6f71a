"""The config file's keys, declared once with their checks (read by ``cqgov_tui.config``)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from .config import server_url


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    server: str | None = None
    token: str | None = None
    lang: Literal["zh", "en"] | None = None
    db: str | None = None

    @field_validator("server")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else server_url(value)

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
            raise ValueError("must be printable ASCII without spaces (as `cqgov token create` prints it)")
        return value

    @field_validator("db")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        return None if value is None else os.path.expanduser(value)
