"""eventstore/library.py: every use of the eventsourcing library's private internals, pinned.

An upgrade of the library that renames or stops calling one of these must fail here: the hash
chain, the recorded time and the append-only triggers are written from inside them, and the
ledger's own save must do what the library's does."""

from __future__ import annotations

import ast
import inspect
import textwrap
from importlib.metadata import version

import pytest
from eventsourcing.application import Application

from eventstore import library
from eventstore.store import LedgerPostgresRecorder, LedgerSQLiteRecorder


def calls(function: object) -> list[str]:
    """The names of the methods ``function``'s source calls on ``self``/``app``, in order."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    return [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("self", "app")
    ]


def test_the_installed_library_is_the_version_the_adapter_was_written_against():
    assert version("eventsourcing") == library.LIBRARY_VERSION


def test_the_ledgers_commit_does_what_the_librarys_save_does_after_collecting_events():
    theirs = [c for c in calls(Application.save) if c != "collect_events"]
    assert theirs == ["_record", "_take_snapshots", "_notify", "notify"]
    assert calls(library.commit) == theirs


@pytest.mark.parametrize(("base", "private", "caller"), library.RECORDER_HOOKS, ids=lambda v: getattr(v, "__name__", v))
def test_each_private_hook_the_recorders_use_is_still_called_by_the_library(base, private, caller):
    assert callable(getattr(base, private, None)), f"{base.__name__} has no {private}"
    called = {cls.__name__ for cls in base.__mro__ if caller in vars(cls) and private in calls(vars(cls)[caller])}
    assert called, f"no {caller} of {base.__name__} calls {private}"


def test_the_ledgers_recorders_build_on_the_library_classes_the_hooks_name():
    assert issubclass(LedgerSQLiteRecorder, library.SQLiteApplicationRecorder)
    assert issubclass(LedgerPostgresRecorder, library.PostgresApplicationRecorder)
    overridden = {
        name
        for recorder in (LedgerSQLiteRecorder, LedgerPostgresRecorder)
        for cls in recorder.__mro__
        if cls.__module__.startswith("eventstore.")
        for name, member in vars(cls).items()
        if inspect.isfunction(member)
        and name.startswith("_")
        and not name.startswith("__")
        and any(
            hasattr(base, name) for base in (library.SQLiteApplicationRecorder, library.PostgresApplicationRecorder)
        )
    }
    assert overridden <= {private for _, private, _ in library.RECORDER_HOOKS}, overridden


def test_the_librarys_decoding_that_the_fast_decoder_does_again_is_unchanged():
    """eventstore/decode.py mirrors these; a library that decodes differently must be looked at first."""
    assert library.source_digest(library.DECODE_MIRRORS) == library.DECODE_MIRRORS_SHA256
    assert {"_type_", "_data_"} <= set(inspect.getsource(library.JSONTranscoder._decode_obj).split('"'))
    transcoder = library.JSONTranscoder()
    transcoder.register(library.DecimalAsStr())
    assert set(transcoder.names) == {"decimal_str"}  # the table the fast decoder reads its names from
