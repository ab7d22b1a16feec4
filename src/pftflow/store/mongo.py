"""The MongoDB store of a campaign: a maggma ``MongoStore`` whose serialised form (copied by jobflow into
every FireWorks Firework) holds no password, and the URI helpers that keep passwords out of messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

from maggma.stores import MongoStore


# ------------------------------------------------------------------------------ MongoDB
#: environment variable with the MongoDB URI (password included) on a machine that runs jobs
MONGODB_URI_ENV = "PFTFLOW_MONGODB_URI"
#: environment variable naming a file that holds the URI (default :data:`MONGODB_URI_FILE`)
MONGODB_URI_FILE_ENV = "PFTFLOW_MONGODB_URI_FILE"
#: file read for the URI when neither the job nor the environment holds the password
MONGODB_URI_FILE = "~/.config/pftflow/mongodb_uri"
#: seconds a MongoDB server may take to answer before the store gives up (env ``PFTFLOW_MONGODB_TIMEOUT_S``)
MONGODB_TIMEOUT_S = 2.0


class StoreConnectionError(RuntimeError):
    """The campaign store cannot be reached or its credentials are missing (message: one line,
    host and port, never the password)."""


_SECRET = re.compile(r"(?P<scheme>[a-z+]+://)(?P<user>[^:@/]+):(?P<password>[^@/]+)@")


def redact(text: str) -> str:
    """A URI with its password replaced by ``***`` (``mongodb://u:pw@h`` -> ``mongodb://u:***@h``)."""
    return _SECRET.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (see :func:`redact`)."""
    return redact(uri)


def uri_hosts(uri: str) -> str:
    """``host:port[,host:port]`` of a MongoDB URI (no DNS lookup, no credentials)."""
    m = re.match(r"^[a-z+]+://(?:[^@/?]*@)?([^/?]*)", uri)
    hosts = m.group(1) if m else "?"
    if uri.startswith("mongodb+srv://"):
        return f"{hosts} (SRV)"
    return ",".join(h if ":" in h.rsplit("]", 1)[-1] else f"{h}:27017" for h in hosts.split(","))


def _mongo_reason(err: Exception, secrets: tuple[str, ...]) -> str:
    """One short clause from a pymongo error (no topology dump, no URI, no password)."""
    details = getattr(err, "details", None)
    text = (details or {}).get("errmsg") if isinstance(details, dict) else None
    text = str(text or err).split(", full error")[0].split(" (configured timeouts")[0].split(", Timeout:")[0]
    text = re.sub(r"^[^\s]+:\d+: ", "", text.strip().splitlines()[0] if text.strip() else type(err).__name__)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return redact_uri(text)[:200]


class MongoURIEnvStore(MongoStore):
    """A MongoDB collection whose serialised form holds no password.

    jobflow serialises the JobStore into every FireWorks Firework (``as_dict``), so whatever the
    store's constructor arguments hold ends up in the LaunchPad.  This store keeps the URI it was
    given in memory only; ``as_dict`` holds ``uri`` with the password replaced by ``***``, the name
    of the environment variable (``uri_env``) and an optional ``uri_file``.  On ``connect`` the URI
    is, in this order: the one given (same process); the serialised one when it carries no
    password; ``$uri_env``; the file ``uri_file`` / ``$PFTFLOW_MONGODB_URI_FILE`` /
    ``~/.config/pftflow/mongodb_uri`` (one line).  ``connect`` pings the server and fails within
    ``timeout_s`` with :class:`StoreConnectionError` naming host and port.  (maggma's
    ``MongoStore`` serialises the URI whole, password included, and only contacts the server at
    the first query, after pymongo's 30 s server selection.)
    """

    #: serialised (FireWorks, pickle) under the path it had before pftflow.store became a package
    __module__ = "pftflow.store"

    def __init__(
        self,
        collection_name: str,
        uri: str | None = None,
        database: str = "pftflow",
        uri_env: str = MONGODB_URI_ENV,
        uri_file: str | None = None,
        timeout_s: float | None = None,
        **kwargs,
    ):
        secret = uri if uri and redact_uri(uri) != uri else None
        public = redact_uri(uri) if uri else None
        super().__init__(database=database, collection_name=collection_name, uri=public, **kwargs)
        self._secret_uri = secret  # not an __init__ argument of the same name: never serialised
        self.uri_env = uri_env
        self.uri_file = uri_file
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return f"mongodb://{uri_hosts(self.uri or '')}/{self.database}/{self.collection_name}"

    def _uri_file(self) -> Path:
        return Path(self.uri_file or os.environ.get(MONGODB_URI_FILE_ENV) or MONGODB_URI_FILE).expanduser()

    def resolved_uri(self) -> str:
        """The URI to connect with (see the class docstring); raises :class:`StoreConnectionError`."""
        if self._secret_uri:
            return self._secret_uri
        if self.uri and "***" not in self.uri:
            return self.uri
        if os.environ.get(self.uri_env):
            return os.environ[self.uri_env]
        f = self._uri_file()
        if f.is_file() and f.read_text().strip():
            return f.read_text().strip().splitlines()[0].strip()
        raise StoreConnectionError(
            f"MongoDB store {self.uri}: the password is not stored with the job; set ${self.uri_env} to the URI on this "
            f"machine (or write it to {f}, mode 600)"
        )

    def connect(self, force_reset: bool = False):
        if self._coll is not None and not force_reset:
            return
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        uri = self.resolved_uri()
        timeout = float(self.timeout_s or os.environ.get("PFTFLOW_MONGODB_TIMEOUT_S") or MONGODB_TIMEOUT_S)
        ms = int(timeout * 1000)
        kwargs = {"serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms, **self.mongoclient_kwargs}
        secrets = tuple(x for x in (self._password_of(uri),) if x)
        try:
            client = MongoClient(uri, **kwargs)
            client.admin.command("ping")
        except PyMongoError as err:
            reason = _mongo_reason(err, secrets)
            raise StoreConnectionError(
                f"cannot reach the MongoDB store at {uri_hosts(uri)} within {timeout:g} s ({reason}): check that the server runs "
                f"and that store.uri / ${self.uri_env} names it"
            ) from None
        except Exception as err:  # noqa: BLE001 - e.g. pymongo.errors.InvalidURI / ConfigurationError text may hold the URI
            raise StoreConnectionError(f"MongoDB store {redact_uri(uri)}: {_mongo_reason(err, secrets)}") from None
        self._coll = client[self.database][self.collection_name]

    @staticmethod
    def _password_of(uri: str) -> str | None:
        m = re.match(r"^[a-z+]+://[^:@/]+:([^@/]+)@", uri)
        return m.group(1) if m else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MongoURIEnvStore):
            return False
        return (self.uri, self.database, self.collection_name, self.last_updated_field) == (other.uri, other.database, other.collection_name, other.last_updated_field)

    def __hash__(self) -> int:
        return hash((self.database, self.collection_name, self.last_updated_field))
