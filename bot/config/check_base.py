"""What every check model shares; its own module so check models outside models.py (target_check_models.py) can use it."""
from __future__ import annotations

from pydantic import Field

from bot.config.types import Duration, Strict


class CheckBase(Strict):
    name: str | None = Field(None, description="Label in reports; defaults to the check kind.")
    timeout: Duration = Field(5.0, description="Each check runs under its own timeout.")

    @property
    def label(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]
