"""The UI tests' own set-up: an exception escaping into the qasync loop fails the test.

Run in a child pytest (``pytester``) with this folder's real ``conftest.py``: a background
task that raises must turn a passing test into an error at teardown, and a clean test must
stay green.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


@pytest.mark.slow
def test_an_exception_escaping_into_the_loop_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((_HERE / "conftest.py").read_text())
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        qt_api = "pyside6"
        asyncio_mode = "auto"
        asyncio_default_fixture_loop_scope = "function"
        """
    )
    pytester.makepyfile(
        test_loop="""
        import asyncio

        from parley.ui.tasks import TaskSet


        async def test_escapes(qtbot):
            async def boom():
                raise ValueError("escaped into the loop")

            TaskSet().spawn(boom(), name="boom")
            await asyncio.sleep(0.05)


        async def test_clean(qtbot):
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*escaped into the loop*"])
