"""Strategy rules as pure functions, and the built-ins' decisions on a scripted quote stream."""
from __future__ import annotations

import pytest

from zmqtrade.book import Quote
from zmqtrade.strategies import BUY, SELL, StrategyLoadError, load_strategy_class, signals
from zmqtrade.strategies.ma_news import MovingAverageNews
from zmqtrade.strategies.rsi import RsiReversion
from zmqtrade.wire import News, Reply


def quote(last: float, symbol: str = "AAPL") -> Quote:
    return Quote(0, symbol, last - 0.01, last + 0.01, last, 100, 1, 1, 1, 1)


@pytest.mark.parametrize("short, long, expected", [
    (101.0, 100.0, signals.BUY), (99.0, 100.0, signals.SELL), (100.0, 100.0, signals.HOLD),
    (None, 100.0, signals.HOLD)])
def test_price_signal(short, long, expected):
    assert signals.price_signal(short, long) == expected


@pytest.mark.parametrize("sentiment, expected", [(61, signals.BUY), (39, signals.SELL), (50, signals.HOLD),
                                                 (60, signals.HOLD), (None, signals.HOLD)])
def test_news_signal(sentiment, expected):
    assert signals.news_signal(sentiment, bullish=60, bearish=40) == expected


@pytest.mark.parametrize("price, news, expected", [
    (signals.BUY, signals.BUY, signals.BUY), (signals.SELL, signals.SELL, signals.SELL),
    (signals.BUY, signals.SELL, signals.HOLD), (signals.BUY, signals.HOLD, signals.HOLD),
    (signals.HOLD, signals.SELL, signals.HOLD)])
def test_combine_acts_only_when_both_agree(price, news, expected):
    assert signals.combine(price, news) == expected


@pytest.mark.parametrize("position, signal, expected", [
    (signals.FLAT, signals.BUY, signals.LONG), (signals.LONG, signals.BUY, None),
    (signals.LONG, signals.SELL, signals.SHORT), (signals.SHORT, signals.SELL, None),
    (signals.SHORT, signals.HOLD, None)])
def test_next_position_does_not_repeat(position, signal, expected):
    assert signals.next_position(position, signal) == expected


def test_mean_and_rsi():
    assert signals.mean([1.0, 2.0, 3.0, 4.0], 2) == 3.5
    assert signals.mean([1.0], 2) is None
    assert signals.rsi([5.0, 4.0, 3.0, 2.0], 3) == 0.0
    assert signals.rsi([1.0, 2.0, 3.0, 4.0], 3) == 100.0
    assert signals.rsi([1.0, 2.0, 1.0], 2) == 50.0
    assert signals.rsi([1.0, 2.0], 3) is None
    assert signals.rsi_signal(20, 30, 70) == signals.BUY
    assert signals.rsi_signal(80, 30, 70) == signals.SELL
    assert signals.rsi_signal(50, 30, 70) == signals.HOLD


def ma(**params) -> MovingAverageNews:
    return MovingAverageNews("s", ["AAPL"], 10, {"short": 2, "long": 4, "bullish": 60.0, "bearish": 40.0, **params})


def test_ma_news_buys_once_when_trend_and_news_agree():
    s = ma()
    s.on_news(News(1, "AAPL", 80, 0))
    orders = [s.on_quote(quote(p)) for p in (100.0, 100.0, 100.0, 101.0, 102.0, 103.0)]
    sent = [o for o in orders if o]
    assert len(sent) == 1, orders  # rising with bullish news: one BUY, then no repeat
    (o,) = sent[0]
    assert (o.symbol, o.side, o.qty) == ("AAPL", BUY, 10)
    assert o.price == pytest.approx(101.01)  # at the ask of the quote that triggered it


def test_ma_news_holds_when_news_disagrees():
    s = ma()
    s.on_news(News(1, "AAPL", 20, 0))  # bearish news, rising prices
    assert not any(s.on_quote(quote(p)) for p in (100.0, 100.0, 100.0, 101.0, 102.0))


def test_ma_news_reverses_with_double_qty_and_retries_after_reject():
    s = ma()
    s.on_news(News(1, "AAPL", 80, 0))
    buy = next(o for p in (100.0, 100.0, 100.0, 101.0) if (o := s.on_quote(quote(p))))[0]
    s.record_fill(buy)
    s.on_news(News(2, "AAPL", 10, 0))
    sell = next(o for p in (99.0, 97.0, 95.0) if (o := s.on_quote(quote(p))))[0]
    assert (sell.side, sell.qty) == (SELL, 20)  # long -> short
    s.on_reply(Reply(2, "rejected", 0, "risk", 0, 0), sell)
    again = s.on_quote(quote(93.0))
    assert again and again[0].side == SELL  # a rejected move is not taken as done
    assert s.position["AAPL"] == 10


def test_rsi_reversion_buys_oversold_and_sells_overbought():
    s = RsiReversion("r", ["AAPL"], 5, {"period": 3})
    falling = [s.on_quote(quote(p)) for p in (10.0, 9.0, 8.0, 7.0, 6.0)]
    assert [o[0].side for o in falling if o] == [BUY]
    rising = [s.on_quote(quote(p)) for p in (7.0, 8.0, 9.0, 10.0)]
    assert [(o[0].side, o[0].qty) for o in rising if o] == [(SELL, 10)]


def test_loading_by_name_and_path():
    assert load_strategy_class("ma_news") is MovingAverageNews
    assert load_strategy_class("zmqtrade.strategies.rsi:RsiReversion") is RsiReversion
    with pytest.raises(StrategyLoadError, match="neither a built-in"):
        load_strategy_class("nope")
    with pytest.raises(StrategyLoadError, match="cannot import"):
        load_strategy_class("no_such_module_x:Foo")
    with pytest.raises(StrategyLoadError, match="no Strategy subclass"):
        load_strategy_class("zmqtrade.strategies.signals:mean")


def test_parameter_checks():
    assert MovingAverageNews.problems({"short": 3}) == []
    assert MovingAverageNews.problems({"shrt": 3})[0][0] == "shrt"
    assert "expected int" in MovingAverageNews.problems({"short": "3"})[0][1]
    assert "outside" in MovingAverageNews.problems({"bullish": 120})[0][1]
    assert MovingAverageNews.problems({"short": 30})[0] == ("", "short (30) must be below long (20)")
    assert MovingAverageNews.problems({"bullish": 70})  == []  # an int where a float is expected is fine


def test_every_quote_alternates_sides_per_symbol():
    from zmqtrade.strategies.every_quote import EveryQuote

    s = EveryQuote("p", ["AAPL", "MSFT"], 3, {})
    sides = [(o := s.on_quote(quote(100.0, sym))[0]).side for sym in ("AAPL", "AAPL", "MSFT", "AAPL")]
    assert sides == [BUY, SELL, BUY, BUY]
    assert o.qty == 3 and o.price == pytest.approx(100.01)


def test_a_rejected_move_is_undone_only_if_no_later_move_replaced_it():
    s = ma()
    s.on_news(News(1, "AAPL", 80, 0))
    buy = next(o for p in (100.0, 100.0, 100.0, 101.0) if (o := s.on_quote(quote(p))))[0]   # FLAT -> LONG
    s.on_news(News(2, "AAPL", 10, 0))
    sell = next(o for p in (99.0, 97.0, 95.0) if (o := s.on_quote(quote(p))))[0]            # LONG -> SHORT
    s.on_reply(Reply(1, "rejected", 0, "risk", 0, 0), buy)   # the first is rejected while the second is out
    assert s.target["AAPL"] == signals.SHORT                 # the later move stands
    s.on_reply(Reply(2, "rejected", 0, "risk", 0, 0), sell)
    assert s.target["AAPL"] == signals.LONG                  # and undoing it goes back to what it replaced
