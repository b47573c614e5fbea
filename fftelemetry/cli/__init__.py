"""The `fftelemetry` console script (see `main.py`).

COMMAND_NAMES is the CLI's own list of the sub-commands whose use is collected: all but `delete`
(see delete.py). It lives here, free of imports, because the telemetry catalog validates
`system.command.*` values against it.
"""

COMMAND_NAMES = ("cron", "instructions", "create-user", "status", "pack")
