"""Accounts: `Root → users`, a folder of `User`s keyed by normalised email.

Passwords are argon2id hashes made by argon2-cffi; the hasher is passed in (see
`fftelemetry.security.password_hasher`) so its cost comes from the settings. Class paths are
stored in pickles: keep `fftelemetry.resources.users.User` and `.Users` where they are.
"""

import re
import secrets
import unicodedata
from datetime import UTC, datetime

from argon2.exceptions import InvalidHashError, VerificationError
from persistent import Persistent

from .. import i18n
from .folder import Folder

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # hashing a megabyte of "password" is a cheap way to burn our CPU
# UTF-8 octets, not characters (RFC 5321, 4.5.3.1.3; RFC 6531 counts an address so too). The
# session cookie keeps the address, twice at registration (the welcome names it), and a browser
# keeps no cookie over 4 KB: counted in bytes, the address cannot take it past that.
MAX_EMAIL = 254
# Deliberately loose (an address is proven by mail, not by regex) but without spaces or slashes,
# which would make a bad folder name, and in the shape every mail system needs: the local part
# dot-separated words (no dot first, last or twice), the domain two or more labels, none empty
# nor starting or ending with a hyphen. Any other character, in any script, is left to the mail.
_DOMAIN_LABEL = r"[^@\s/.-](?:[^@\s/.]*[^@\s/.-])?"
EMAIL_PATTERN = re.compile(rf"[^@\s/.]+(?:\.[^@\s/.]+)*@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")


class AccountError(ValueError):
    """A refused email, password or duplicate account; the message is meant for the user, and
    `field` names the form field it is about (the page ties the message to it)."""

    def __init__(self, message, field):
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        # Unpickling calls the class with these: both arguments its __init__ takes, then the
        # instance's dict back (its notes, from add_note).
        return type(self), (*self.args, self.field), self.__dict__


def normalise_email(email):
    """One spelling per address: lower case, and composed (NFC). A keyboard or a password manager
    may send "é" as e + U+0301; unnormalised, that was a second account, and the first could not
    be signed in to with it."""
    return unicodedata.normalize("NFC", (email or "").strip().lower())


def check_email(email):
    email = normalise_email(email)
    # isprintable: no control characters (a NUL), nor invisible ones (a zero-width space, a
    # right-to-left override) that would make an address look like another one; nor a lone
    # surrogate (a console argument's undecodable byte), which UTF-8 cannot encode
    if not email.isprintable() or len(email.encode()) > MAX_EMAIL:
        raise AccountError("Please enter a valid email address.", "email")
    if not EMAIL_PATTERN.fullmatch(email):
        raise AccountError("Please enter a valid email address.", "email")
    return email


def check_password(password):
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(
            f"The password must have at least {MIN_PASSWORD} characters.", "password"
        )
    if len(password) > MAX_PASSWORD:
        raise AccountError(
            f"The password must have at most {MAX_PASSWORD} characters.", "password"
        )
    return password


class User(Persistent):
    __name__ = None
    __parent__ = None
    # Stored in each session at sign-in; a session holding another value is no longer signed in.
    # An account stored before keys existed has None, and no session is signed in to it until
    # its next sign-in gives it a key: a cookie copied before then is worth nothing.
    session_key = None

    def __init__(self, email, password_hash, is_admin=False):
        self.email = email
        self.password_hash = password_hash
        self.is_admin = is_admin
        self.language = i18n.DEFAULT_LANGUAGE
        self.locale = i18n.SAME_AS_LANGUAGE
        # False until the new-user wizard is finished; login sends such a user to /welcome.
        self.welcomed = False
        self.created_at = datetime.now(UTC)
        self.session_key = secrets.token_hex(16)

    def end_sessions(self):
        """Sign this account out everywhere: sessions are signed cookies that a browser (or
        anyone who copied one) could keep sending, so a log-out must change what they are
        checked against, not only clear the one browser's cookie."""
        self.session_key = secrets.token_hex(16)

    def verify_password(self, password, hasher):
        """Whether `password` is right; upgrades the hash when the hasher's cost has changed."""
        try:
            hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if hasher.check_needs_rehash(self.password_hash):
            self.password_hash = hasher.hash(password)
        return True

    def set_preferences(self, language, locale):
        """Store a choice from the supported lists; raises AccountError for anything else."""
        if not i18n.is_supported_language(language):
            raise AccountError("Please choose a language from the list.", "language")
        if locale != i18n.SAME_AS_LANGUAGE and not i18n.is_supported_locale(locale):
            raise AccountError("Please choose a locale from the list.", "locale")
        self.language = language
        self.locale = locale

    @property
    def resolved_locale(self):
        return i18n.resolve_locale(self.language, self.locale)


class Users(Folder):
    # Who registered first: the installation's owner. Two first registrations racing both write
    # this attribute, so one gets a ConflictError, is retried, and becomes an ordinary user.
    owner = None

    def by_email(self, email):
        return self.get(normalise_email(email))

    def create(self, email, password, hasher, admin=None):
        """A new User; `admin=None` makes the first account the administrator (as Firefly III
        does: the first user owns the installation). Raises AccountError."""
        email = check_email(email)
        check_password(password)
        if email in self:
            raise AccountError("An account with this email address exists already.", "email")
        first = self.owner is None
        if first:
            self.owner = email
        user = User(email, hasher.hash(password), is_admin=first if admin is None else admin)
        return self.add(email, user)
