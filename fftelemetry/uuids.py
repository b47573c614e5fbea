"""One reading of a uuid for both ends of a submission (record ids, installation ids, the
receiver's reference for a batch): 32 hex digits, dashed or not, in either case, maybe braced.

`uuid.UUID` alone takes more, since it reads the digits with int(): " 123…", "+123…", "0x23…",
"0123_456…", and 32 Arabic-Indic zeros for the nil uuid.
"""

import re
import uuid

HEX = r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"
SPELLING = re.compile(rf"{HEX}|\{{{HEX}\}}", re.IGNORECASE | re.ASCII)


def parse_uuid(text):
    """The uuid `text` spells, or ValueError."""
    if not isinstance(text, str) or not SPELLING.fullmatch(text):
        raise ValueError("expected a uuid string")
    return uuid.UUID(text)
