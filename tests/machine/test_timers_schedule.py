import pytest

from machine.timers import Schedule, ScheduleError, parse_schedule


@pytest.mark.parametrize(
    "text,expected",
    [
        ("5s", Schedule("fixed", seconds=5.0)),
        ("1m", Schedule("fixed", seconds=60.0)),
        ("2h", Schedule("fixed", seconds=7200.0)),
        ("1m_close", Schedule("close", interval="1m")),
        ("1h_close", Schedule("close", interval="1h")),
    ],
)
def test_parse(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["", "5", "0s", "2d", "7m_close", "1h-close", "25h"])
def test_rejects(text):
    with pytest.raises(ScheduleError):
        parse_schedule(text)
