"""The registries (HELPERS, INDICATORS) and what holds for every helper:
docs, signatures, warm-up boundaries, latest vs series twins, the shared
computation path, too-short inputs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import talib
from kline_cases import StoreView, assert_plain, load
from talib import abstract

import indicators as ind
from indicators import HELPERS, INDICATORS, compute

# parameters (as passed after klines) tried for each indicator
PARAMS: dict[str, list[tuple]] = {
    "sma": [(20,), (1,), (7,)],
    "ema": [(20,), (1,), (50,)],
    "wma": [(20,), (1,)],
    "vwap": [()],
    "rsi": [(), (2,), (30,)],
    "macd": [(), (2, 3, 1), (5, 35, 5)],
    "stochastic": [(), (14, 3, 3), (1, 1, 1), (5, 4, 2)],
    "cci": [(), (2,)],
    "williams_r": [(), (2,)],
    "roc": [(), (1,)],
    "bollinger_bands": [(), (2, 1.0)],
    "atr": [(), (1,)],
    "keltner_channels": [(), (5, 30, 1.0), (1, 1, 0.5)],
    "donchian_channels": [(), (1,)],
    "volume": [(), (5,)],
    "volume_change": [(1,), (7,)],
    "obv": [()],
    "volume_ma": [(), (1,)],
    "adx": [(), (2,)],
    "aroon": [(), (2,)],
    "price_change": [(1,), (9,)],
    "price_change_percent": [(1,), (9,)],
    "highest_high": [(1,), (9,)],
    "lowest_low": [(1,), (9,)],
}
CASES = [(name, params) for name, sets in PARAMS.items() for params in sets]
IDS = [f"{name}{params}" for name, params in CASES]

TALIB_FUNCTIONS = {
    "sma": ("SMA", ["timeperiod"]),
    "ema": ("EMA", ["timeperiod"]),
    "wma": ("WMA", ["timeperiod"]),
    "rsi": ("RSI", ["timeperiod"]),
    "macd": ("MACD", ["fastperiod", "slowperiod", "signalperiod"]),
    "stochastic": ("STOCH", ["fastk_period", "slowd_period", "slowk_period"]),
    "cci": ("CCI", ["timeperiod"]),
    "williams_r": ("WILLR", ["timeperiod"]),
    "roc": ("ROC", ["timeperiod"]),
    "bollinger_bands": ("BBANDS", ["timeperiod", "nbdevup"]),
    "atr": ("ATR", ["timeperiod"]),
    "obv": ("OBV", []),
    "volume_ma": ("SMA", ["timeperiod"]),
    "adx": ("ADX", ["timeperiod"]),
    "aroon": ("AROON", ["timeperiod"]),
    "price_change": ("MOM", ["timeperiod"]),
    "price_change_percent": ("ROC", ["timeperiod"]),
}


def test_registries_cover_seed_002s_helper_list():
    assert set(INDICATORS) == set(PARAMS)
    getters = {"get_closes", "get_opens", "get_highs", "get_lows", "get_volumes"}
    twins = {s.series_helper for s in INDICATORS.values()} - {None}
    latest = {s.latest_helper for s in INDICATORS.values()}
    assert set(HELPERS) == getters | twins | latest
    assert len(HELPERS) == 49
    assert {s.name for s in INDICATORS.values() if s.series_helper is None} == {
        "price_change",
        "price_change_percent",
        "highest_high",
        "lowest_low",
    }


def test_helpers_are_exported_under_their_own_names():
    for name, helper in HELPERS.items():
        assert helper.__name__ == name
        assert getattr(ind, name) is helper
        assert name in ind.__all__
    with pytest.raises(TypeError):
        HELPERS["get_latest_rsi"] = print  # type: ignore[index]


def test_every_exported_name_exists():
    for name in ind.__all__:
        assert hasattr(ind, name), name
    for name in compute.__all__:
        assert callable(getattr(compute, name)), name


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_every_helper_documents_source_warmup_args_and_return(name):
    doc = inspect.getdoc(HELPERS[name])
    assert "Args:" in doc and "Returns:" in doc
    if name in {"get_closes", "get_opens", "get_highs", "get_lows", "get_volumes"}:
        assert "Binance kline column" in doc
        return
    assert "warm-up" in doc
    assert "TA-Lib" in doc or "numpy" in doc


@pytest.mark.parametrize("spec", INDICATORS.values(), ids=list(INDICATORS))
def test_bind_has_the_helpers_signature(spec):
    bind = list(inspect.signature(spec.bind).parameters.values())
    for helper_name in (spec.latest_helper, spec.series_helper):
        if helper_name is None:
            continue
        helper = list(inspect.signature(HELPERS[helper_name]).parameters.values())
        assert helper[0].name == "klines"
        assert [(p.name, p.default) for p in helper[1:]] == [(p.name, p.default) for p in bind]
    assert getattr(compute, spec.name) is spec.compute


TALIB_CASES = [case for case in CASES if case[0] in TALIB_FUNCTIONS]
TWIN_CASES = [case for case in CASES if INDICATORS[case[0]].series_helper]


@pytest.mark.parametrize(("name", "params"), TALIB_CASES, ids=[f"{n}{p}" for n, p in TALIB_CASES])
def test_warmup_matches_talib_lookback(name, params):
    spec = INDICATORS[name]
    bound = spec.bind(*params)
    function, names = TALIB_FUNCTIONS[name]
    parameters = dict(zip(names, bound, strict=True))
    if name == "stochastic":
        parameters["slowk_matype"] = parameters["slowd_matype"] = 0
    lookback = abstract.Function(function, **parameters).lookback
    assert spec.warmup(*bound) == lookback + 1


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_warmup_boundary(name, params):
    """Exactly warm-up - 1 candles give None, warm-up candles give a value,
    and the series has None exactly at the first warm-up - 1 positions."""
    spec = INDICATORS[name]
    latest_fn = HELPERS[spec.latest_helper]
    warmup = spec.warmup(*spec.bind(*params))
    rows = load("BTCUSDT-1m").rows
    view = StoreView(load("BTCUSDT-1m").table[:warmup])
    assert latest_fn(rows[: warmup - 1], *params) is None
    assert latest_fn(rows[:warmup], *params) is not None
    assert latest_fn(view, *params) == latest_fn(rows[:warmup], *params)
    if spec.series_helper:
        series = HELPERS[spec.series_helper](rows[: warmup + 3], *params)
        for values in series if len(spec.outputs) > 1 else (series,):
            assert values[: warmup - 1] == (None,) * (warmup - 1)
            assert None not in values[warmup - 1 :]


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
@pytest.mark.parametrize("count", [0, 1])
def test_too_short_inputs_give_none_never_an_error(name, params, count):
    spec = INDICATORS[name]
    rows = load("BTCUSDT-1m").rows[:count]
    latest = HELPERS[spec.latest_helper](rows, *params)
    if spec.warmup(*spec.bind(*params)) > count:
        assert latest is None
    else:
        assert_plain(latest)
    if spec.series_helper:
        series = HELPERS[spec.series_helper](StoreView(load("BTCUSDT-1m").table[:count]), *params)
        expected_length = (count,) * len(spec.outputs)
        lengths = (len(series),) if len(spec.outputs) == 1 else tuple(len(s) for s in series)
        assert lengths == expected_length


@pytest.mark.parametrize(("name", "params"), TWIN_CASES, ids=[f"{n}{p}" for n, p in TWIN_CASES])
@pytest.mark.parametrize("dataset", ["ETHUSDT-5m", "DOGEUSDT-1h"])
def test_latest_is_the_last_of_the_series_twin(name, params, dataset):
    spec = INDICATORS[name]
    rows = load(dataset).rows
    latest = HELPERS[spec.latest_helper](rows, *params)
    series = HELPERS[spec.series_helper](rows, *params)
    last = series[-1] if len(spec.outputs) == 1 else tuple(s[-1] for s in series)
    assert latest == last
    assert latest is not None


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_shared_computation_path_gives_the_helpers_results(name, params):
    """What a caching layer does (bind, compute on view columns once, present
    as latest and as series) equals calling the helpers."""
    spec = INDICATORS[name]
    view = StoreView(load("ADAUSDT-1h").table)
    bound = spec.bind(*params)
    arrays = spec.compute_arrays([view.column(i) for i in spec.columns], bound)
    assert len(arrays) == len(spec.outputs)
    assert all(isinstance(a, np.ndarray) and a.shape == (400,) for a in arrays)
    assert spec.latest(arrays) == HELPERS[spec.latest_helper](view, *params)
    if spec.series_helper:
        assert spec.series(arrays) == HELPERS[spec.series_helper](view, *params)


def test_bind_accepts_keywords_and_refuses_bad_values():
    assert INDICATORS["macd"].bind(signal_period=5) == (12, 26, 5)
    assert INDICATORS["keltner_channels"].bind(multiplier=1) == (20, 10, 1.0)
    with pytest.raises(ind.InvalidParameterError):
        INDICATORS["rsi"].bind(0)


def test_talib_accepts_period_one_where_we_do():
    """SMA/EMA/WMA/ATR/ROC/MOM/STOCH allow period 1 in the pinned TA-Lib; a
    TA-Lib that refused it would break the documented ranges."""
    c = np.linspace(1.0, 2.0, 10)
    for function in (talib.SMA, talib.EMA, talib.WMA, talib.ROC, talib.MOM):
        function(c, 1)
    talib.ATR(c + 1, c - 1, c, 1)
    talib.STOCH(c + 1, c - 1, c, 1, 1, 0, 1, 0)
