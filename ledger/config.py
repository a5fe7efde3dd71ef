"""Configuration: where the store is and the business settings a deployment chooses.

Read once at the entry point (CLI) and passed down; nothing below reads the
environment. The store is always chosen explicitly: the library's in-memory
default would accept events and lose them at exit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import unquote, urlsplit, urlunsplit

from domain.delinquency import DEFAULT_WRITE_OFF_DPD
from domain.money import DEFAULT_MAX_AMOUNT, InvalidAmount, parse_amount
from domain.settlement import BankTerms
from domain.terms import COMPONENTS, DEFAULT_ALLOCATION_ORDER, DEFAULT_COST_CAP, CostCaps
from eventstore.urls import sqlite_path

DEFAULT_DB_URL = "sqlite:///ledger.db"
# Seconds to wait for a PostgreSQL connection: a wrong password or an unreachable host should
# fail while the operator is still looking, not after the library's default of 30 s.
CONNECT_TIMEOUT_SECONDS = 5
DEFAULT_BATCH_SIZE = 500
# commands in one transaction: past this, a rollback or a lost connection redoes too much work at once,
# and a batch's loans are all held in memory (docs/decisions.md, the batch size)
BATCH_SIZE_MAX = 10_000


class ConfigError(Exception):
    """Bad configuration or usage: the CLI exits 2."""


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB_URL
    cost_caps: CostCaps = CostCaps.flat(DEFAULT_COST_CAP)
    max_amount: Decimal = DEFAULT_MAX_AMOUNT  # per command, JSON integers included
    write_off_dpd: int = DEFAULT_WRITE_OFF_DPD
    allocation_orders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE  # commands per transaction (LEDGER_BATCH_SIZE)
    max_retries: int = 5  # per loan, when another writer got there first
    # the per-loan fallback, first in its loan's queue, retries at least max_retries times and for this long:
    # only writers still on the optimistic path can beat it, and under a burst on one loan they can, often
    contention_seconds: float = 5.0
    retry_seconds: float = 30.0  # how long a lost connection is retried (a restart, a failover)
    # False for a role that may only read and insert history: the owner's `ledger init` set the store
    # up, and opening it must not try to create or upgrade anything (docs/audit.md, the GRANTs)
    setup_store: bool = True
    bank_terms: dict[str, BankTerms] = field(default_factory=dict)  # LEDGER_BANK_TERMS: each bank's agreement

    def allocation_order(self, product: str) -> tuple[str, ...]:
        return self.allocation_orders.get(product, DEFAULT_ALLOCATION_ORDER)


# Every setting the eventsourcing library (9.5.6) reads, bare or prefixed with the application's name.
LIBRARY_SETTINGS = frozenset(
    [
        "AGGREGATE_CACHE_FASTFORWARD",
        "AGGREGATE_CACHE_FASTFORWARD_SKIPPING",
        "AGGREGATE_CACHE_MAXSIZE",
        "APPLICATION_RECORDER_TOPIC",
        "CIPHER_KEY",
        "CIPHER_TOPIC",
        "COMPRESSOR_TOPIC",
        "CREATE_TABLE",
        "DEEPCOPY_FROM_AGGREGATE_CACHE",
        "IS_SNAPSHOTTING_ENABLED",
        "MAPPER_TOPIC",
        "ORIGINATOR_ID_TYPE",
        "PERSISTENCE_MODULE",
        "POSTGRES_CONNECT_TIMEOUT",
        "POSTGRES_CONN_MAX_AGE",
        "POSTGRES_DBNAME",
        "POSTGRES_ENABLE_DB_FUNCTIONS",
        "POSTGRES_GET_PASSWORD_TOPIC",
        "POSTGRES_HOST",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        "POSTGRES_LOCK_TIMEOUT",
        "POSTGRES_MAX_OVERFLOW",
        "POSTGRES_MAX_WAITING",
        "POSTGRES_PASSWORD",
        "POSTGRES_POOL_SIZE",
        "POSTGRES_PORT",
        "POSTGRES_PRE_PING",
        "POSTGRES_SCHEMA",
        "POSTGRES_USER",
        "PROCESS_RECORDER_TOPIC",
        "SINGLE_ROW_TRACKING",
        "SQLITE_DBNAME",
        "SQLITE_LOCK_TIMEOUT",
        "TRACKING_RECORDER_TOPIC",
        "TRANSCODER_TOPIC",
    ]
)


def check_no_library_settings(env: dict[str, str]) -> None:
    """Refuse ``LEDGER_``-prefixed library settings: they are in the ledger's own namespace, so whoever
    set one meant it to do something, and the ledger never passes them on (Ledger.construct_env).
    Bare names (``POSTGRES_PASSWORD``...) are ignored: other programs on the host use them too."""
    stray = sorted(k for k in env if k.startswith("LEDGER_") and k.removeprefix("LEDGER_") in LIBRARY_SETTINGS)
    if stray:
        raise ConfigError(
            f"{', '.join(stray)}: the ledger does not read the eventsourcing library's settings; "
            "choose the store with --db or LEDGER_DB, and unset " + ("it" if len(stray) == 1 else "them")
        )


WRITE_OFF_DPD_MAX = 3650  # ten years past due: any larger is a mistake, not a policy


def settings_from_env(db_url: str | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    check_no_library_settings(env)
    url = db_url or env.get("LEDGER_DB") or DEFAULT_DB_URL
    store_env(url)  # fail early on a bad URL
    cost_caps = _parse_cost_caps(env)
    try:
        max_amount = parse_amount(
            env.get("LEDGER_MAX_AMOUNT", str(DEFAULT_MAX_AMOUNT)), "LEDGER_MAX_AMOUNT", maximum=Decimal("100000000.00")
        )
    except InvalidAmount as e:
        raise ConfigError(f"{e} (at most 100000000.00: the views keep money as 64-bit fen)") from None
    write_off_text = env.get("LEDGER_WRITE_OFF_DPD", str(DEFAULT_WRITE_OFF_DPD))
    try:
        write_off_dpd = int(write_off_text)
    except ValueError:
        write_off_dpd = 0
    if not 1 <= write_off_dpd <= WRITE_OFF_DPD_MAX:
        # 0 or below would write a loan off the first day it is late, for good: never a typo to act on
        raise ConfigError(
            f"LEDGER_WRITE_OFF_DPD={write_off_text!r} must be a whole number of days past due "
            f"from 1 to {WRITE_OFF_DPD_MAX} (default {DEFAULT_WRITE_OFF_DPD})"
        )
    try:
        retry_seconds = float(env.get("LEDGER_RETRY_SECONDS", "30"))
    except ValueError:
        retry_seconds = -1.0
    if not 0 <= retry_seconds <= 86_400:
        raise ConfigError(f"LEDGER_RETRY_SECONDS={env['LEDGER_RETRY_SECONDS']!r} must be seconds from 0 to 86400")
    batch_text = env.get("LEDGER_BATCH_SIZE", str(DEFAULT_BATCH_SIZE))
    batch_size = int(batch_text) if batch_text.isascii() and batch_text.isdigit() and len(batch_text) <= 6 else 0
    if not 1 <= batch_size <= BATCH_SIZE_MAX:
        raise ConfigError(
            f"LEDGER_BATCH_SIZE={batch_text!r} must be a whole number of commands per transaction "
            f"from 1 to {BATCH_SIZE_MAX} (default {DEFAULT_BATCH_SIZE})"
        )
    setup = env.get("LEDGER_SETUP_STORE", "yes")
    if setup not in ("yes", "no"):
        raise ConfigError(f"LEDGER_SETUP_STORE={setup!r} must be yes or no")
    return Settings(
        db_url=url,
        setup_store=setup == "yes",
        cost_caps=cost_caps,
        max_amount=max_amount,
        retry_seconds=retry_seconds,
        batch_size=batch_size,
        write_off_dpd=write_off_dpd,
        allocation_orders=_parse_orders(env.get("LEDGER_ALLOCATION_ORDERS", "")),
        bank_terms=parse_bank_terms(env.get("LEDGER_BANK_TERMS", "")),
    )


def _parse_cost_caps(env: dict[str, str]) -> CostCaps:
    """``LEDGER_COST_CAPS`` (a schedule) or ``LEDGER_COST_CAP`` (flat); both set is ambiguous."""
    if "LEDGER_COST_CAPS" in env and "LEDGER_COST_CAP" in env:
        raise ConfigError("set LEDGER_COST_CAPS (a schedule) or LEDGER_COST_CAP (flat), not both")
    name = "LEDGER_COST_CAPS" if "LEDGER_COST_CAPS" in env else "LEDGER_COST_CAP"
    text = env.get(name, str(DEFAULT_COST_CAP))
    try:
        caps = CostCaps.parse(text)
    except ValueError as e:
        raise ConfigError(f"{name}={text!r}: {e}") from None
    if name == "LEDGER_COST_CAP" and len(caps.caps) > 1:
        raise ConfigError(f"LEDGER_COST_CAP={text!r} is one rate; put a schedule in LEDGER_COST_CAPS")
    return caps


def _parse_orders(text: str) -> dict[str, tuple[str, ...]]:
    """``product=penalty,interest,fee,principal;other=...``"""
    orders: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        product, _, names = item.partition("=")
        order = tuple(n.strip() for n in names.split(","))
        if sorted(order) != sorted(COMPONENTS):
            raise ConfigError(
                f"LEDGER_ALLOCATION_ORDERS for {product!r}: {names!r} must name each of "
                f"{', '.join(DEFAULT_ALLOCATION_ORDER)} once"
            )
        orders[product.strip()] = order
    return orders


MAX_BANKS = 1000  # agreements in one setting: a deployment has a handful of funding banks
_BANK = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)  # a bank as the funded command names it
_RATE = re.compile(r"(0|[1-9][0-9]?)?(\.[0-9]{1,8})?", re.ASCII)
_DPD = re.compile(r"[1-9][0-9]{0,3}", re.ASCII)


def parse_bank_terms(text: str) -> dict[str, BankTerms]:
    """``LEDGER_BANK_TERMS``: ``BANK=rate:0.08,guarantee_dpd:60;OTHER=rate:0.09``. Every part is checked,
    and a malformed one is named (ConfigError, exit 2): a typo here would misprice every loan funded."""
    name = "LEDGER_BANK_TERMS"
    terms: dict[str, BankTerms] = {}
    items = [part.strip() for part in text.split(";") if part.strip()]
    if len(items) > MAX_BANKS:
        raise ConfigError(f"{name}: {len(items)} agreements, at most {MAX_BANKS}")
    for item in items:
        bank, sep, spec = (p.strip() for p in item.partition("="))
        if not sep or not _BANK.fullmatch(bank):
            raise ConfigError(f"{name}: {item!r} must be BANK=rate:R[,guarantee_dpd:N] (BANK as in funded's bank)")
        if bank in terms:
            raise ConfigError(f"{name}: bank {bank!r} has two agreements")
        fields: dict[str, str] = {}
        for part in (p.strip() for p in spec.split(",")):
            key, sep, value = (p.strip() for p in part.partition(":"))
            if not sep or key not in ("rate", "guarantee_dpd") or key in fields:
                raise ConfigError(f"{name}: {bank}: {part!r} must be rate:R or guarantee_dpd:N, each at most once")
            fields[key] = value
        rate = fields.get("rate")
        if rate is None or not rate.strip(".") or not _RATE.fullmatch(rate):
            raise ConfigError(f"{name}: {bank}: rate {rate!r} must be an annual rate such as 0.08 (from 0 to 1)")
        dpd = fields.get("guarantee_dpd")
        if dpd is not None and not _DPD.fullmatch(dpd):
            raise ConfigError(f"{name}: {bank}: guarantee_dpd {dpd!r} must be a whole number of days from 1 to 3650")
        try:
            terms[bank] = BankTerms(Decimal(rate), None if dpd is None else int(dpd))
        except ValueError as e:
            raise ConfigError(f"{name}: {bank}: {e}") from None
    return terms


def redact(url: str) -> str:
    """The URL fit for a message or a log: its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed port, say: show nothing after the scheme that could hold a secret
        return url.split("://", 1)[0] + "://***"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def store_env(url: str) -> dict[str, str]:
    """The eventsourcing settings for a store URL (sqlite:///PATH or postgresql://...)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = sqlite_path(url)
        if parts.netloc or not path:
            raise ConfigError(f"bad SQLite URL {redact(url)!r}: use sqlite:///PATH (relative) or sqlite:////abs/path")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "eventstore.store:LedgerSQLiteRecorder",
        }
    if parts.scheme in ("postgresql", "postgres"):
        dbname = unquote(parts.path.lstrip("/"))
        try:
            port = parts.port or 5432
        except ValueError:
            port = None
        if not parts.hostname or not dbname or port is None:
            raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: use postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": "eventstore.store:LedgerPostgresRecorder",
        }
    raise ConfigError(
        f"unsupported store URL {redact(url)!r}: use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
    )
