from __future__ import annotations

import haorui_async


def test_all_is_sorted_and_complete() -> None:
    exported = haorui_async.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(haorui_async, name), name


def test_exceptions_form_one_tree() -> None:
    for name in haorui_async.__all__:
        obj = getattr(haorui_async, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, haorui_async.HaoruiError), name
    assert issubclass(haorui_async.InvalidMessage, ValueError)
    assert issubclass(haorui_async.Rejected, haorui_async.NotSent)
    assert haorui_async.OutcomeUnknown.may_have_been_sent is True
    assert haorui_async.NotSent.may_have_been_sent is False


def test_importing_the_package_imports_neither_the_fast_backend_nor_the_command_line() -> None:
    import subprocess
    import sys

    code = (
        "import sys, haorui_async; "
        "print(sorted(m for m in sys.modules if m.startswith(('haorui_async.cli', "
        "'haorui_async.testing', 'haorui_async._backends._fast', 'httptools'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
