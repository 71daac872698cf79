"""One subscriber's machine: market data -> store -> screener -> sandbox ->
analysis -> execution -> positions -> persistence, with an HTTP control API.

Run it with ``trader-machine`` (see :mod:`machine.settings` for configuration).
"""

__all__: list[str] = []
