"""Gateway process: publishes price ticks and news sentiment, each on its own PUB stream.

Pacing is open loop: every message is due at ``start + k * period`` and carries that
scheduled time as its timestamp, so a stalled gateway shows up as latency instead of hiding.
Between due times the process sleeps (never spins: on two cores a spinning publisher steals
the CPU its subscribers need). When it falls behind it sends everything that is due at once.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

import zmq

from zmqtrade import sockets, wire
from zmqtrade.feeds import NewsFeed, PriceRow, price_feed
from zmqtrade.service import Service, serve

CONTROL_CHECK_NS = 5_000_000  # look at the control socket at least every 5 ms while busy
SLEEP_FLOOR_NS = 2_000_000    # waits longer than this go through zmq poll (wakes on stop)
MAX_BURST = 4096              # ticks sent in one catch-up pass before looking at control


class Gateway(Service):
    kind = "gateway"

    def open(self) -> dict[str, str]:
        g = self.topo.gateway
        self.session = time.time_ns() & 0x7FFF_FFFF
        self.prices = self.track(sockets.publisher(self.ctx, g.prices, "prices", self.session, g.hwm, g.lossless))
        self.news = self.track(sockets.publisher(self.ctx, g.news, "news", self.session, g.hwm, g.lossless))
        self.publishers = [self.prices, self.news]
        self.feed = price_feed(self.topo.symbols, g.feed)
        self.news_feed = NewsFeed(len(self.topo.symbols), g.feed.seed)
        self.counters.update(ticks_published=0, news_published=0,
                             csv_rows_skipped=getattr(self.feed, "skipped", 0))
        return {"gateway.prices": sockets.bound_endpoint(self.prices),
                "gateway.news": sockets.bound_endpoint(self.news)}

    def run(self) -> None:
        g = self.topo.gateway
        symbols: Sequence[str] = self.topo.symbols
        tick_period = 1e9 / g.rate
        news_period = 1e9 / g.news_rate
        poller = zmq.Poller()
        if self.link is not None and self.link.sock is not None:
            poller.register(self.link.sock, zmq.POLLIN)
        for pub in self.publishers:
            poller.register(pub, zmq.POLLIN)

        t0 = time.monotonic_ns()
        k_tick = k_news = 0
        tick_seq = news_seq = 0
        pending: PriceRow | None = next(self.feed, None)
        next_news = t0
        last_check = t0
        self.log.info("streaming %g ticks/s and %g news/s on %d symbols", g.rate, g.news_rate, len(symbols))
        while not self.stopping:
            now = time.monotonic_ns()
            burst = 0
            while pending is not None and burst < MAX_BURST:
                due = t0 + (pending.offset_ns if pending.offset_ns is not None else int(k_tick * tick_period))
                if due > now:
                    break
                tick_seq += 1
                body = wire.encode_tick(tick_seq, symbols[pending.slot], pending.bid, pending.ask,
                                        pending.last, pending.size, due)
                if not self.send_bounded(self.prices, body):
                    break
                self.counters["ticks_published"] += 1
                k_tick += 1
                burst += 1
                pending = next(self.feed, None)
            while next_news <= now:
                slot, sentiment = self.news_feed.next()
                news_seq += 1
                if not self.send_bounded(self.news, wire.encode_news(news_seq, symbols[slot], sentiment, next_news)):
                    break
                self.counters["news_published"] += 1
                k_news += 1
                next_news = t0 + int(k_news * news_period)

            next_tick = (t0 + (pending.offset_ns if pending.offset_ns is not None else int(k_tick * tick_period))
                         if pending is not None else None)
            wake = min(next_news, next_tick) if next_tick is not None else next_news
            now = time.monotonic_ns()
            wait = wake - now
            if wait > SLEEP_FLOOR_NS or now - last_check > CONTROL_CHECK_NS:
                events = dict(poller.poll(max(0, wait // 1_000_000) if wait > SLEEP_FLOOR_NS else 0))
                last_check = time.monotonic_ns()
                if events:
                    self.service_publishers()
                    self.service_control()
            elif wait > 0:
                time.sleep(wait / 1e9)
        for sock, stream, seq in ((self.prices, "prices", tick_seq), (self.news, "news", news_seq)):
            try:
                sock.send(wire.encode_eos(stream, seq), zmq.NOBLOCK)
            except zmq.Again:
                self.log.warning("could not send end of stream on %s (subscriber full)", stream)


def main(argv: Sequence[str] | None = None) -> int:
    return serve(Gateway, argv)


if __name__ == "__main__":
    sys.exit(main())
