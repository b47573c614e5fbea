"""What the account views announce with `request.registry.notify(...)`.

The views know nothing of who listens: telemetry subscribes (`fftelemetry.telemetry.subscribers`),
and so could mail or audit code later.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UserRegistered:
    request: Any
    user: Any
    user_count: int  # users after this registration


@dataclass(frozen=True)
class PreferencesChanged:
    """A user finished the new-user wizard (`wizard=True`) or saved their preferences."""

    request: Any
    user: Any
    wizard: bool = False
