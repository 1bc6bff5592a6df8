"""Gateway process: publishes price ticks and news sentiment, each on its own PUB stream.

Pacing is open loop: every message is due at ``start + k * period`` and carries that
scheduled time as its timestamp, so a stalled gateway shows up as latency instead of hiding.
Between due times the process sleeps, and spins only the last stretch before a tick is due (at
most 100 us, never more than a quarter of the wait: on two cores a spinning publisher steals the
CPU its subscribers need). Batching is adaptive: when one tick is due it goes alone as a
TICK, so low rates pay no batching delay; when several are due (a high rate, or the gateway
fell behind) they go as one TICKS message of up to ``gateway.batch`` ticks. With
``gateway.batch_window_us`` set, a message holds the ticks due within that window of its
first and goes the moment the last of them is due: at rates above one tick per window they share
a message, every hop downstream (doorbell, orders, replies) shrinks with it, and a tick sent on
time waits less than the window for its message, which tick_to_ack shows because ticks carry
their scheduled time. Closed on the schedule, not a window after the last send, a message never
leaves a tick waiting alone: at 10k ticks/s and 150 us every message holds two ticks (spaced
from the sends, one or two by turns: a third more messages for the same wait).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Sequence

from zmqtrade import clock, metrics, sockets, wire
from zmqtrade.feeds import NewsFeed, price_feed
from zmqtrade.runner import prctl, serve
from zmqtrade.service import PR_SET_TIMERSLACK, Service

CONTROL_CHECK_NS = 5_000_000  # look at the control socket at least every 5 ms while busy
SLEEP_FLOOR_NS = 2_000_000    # waits longer than this go through zmq poll (wakes on stop)
MAX_PASSES = 8                # batches sent in one catch-up pass before looking at control
MAX_EARLY_NS = 100_000        # never wake more than this before a tick is due (and spin the rest)
QUIET_NS = 150_000            # a gap longer than twice this has a quiet half for housekeeping


class Gateway(Service):
    kind = "gateway"

    def open(self) -> dict[str, str]:
        g = self.topo.gateway
        self.session = wire.new_session()
        self.prices, self.news = (
            self.track(sockets.publisher(self.ctx, self.topo.bind_endpoint(f"gateway.{stream}"), stream, self.session,
                                         g.hwm, g.lossless, curve=self.curve(f"gateway.{stream}"),
                                         heartbeat=self.heartbeat))
            for stream in ("prices", "news"))
        self.publishers = [self.prices, self.news]
        self.feed = price_feed(self.topo.symbols, g.feed)
        self.news_feed = NewsFeed(len(self.topo.symbols), g.feed.seed)
        self.lag = metrics.Histogram()
        self.counters.update(ticks_published=0, price_messages=0, news_published=0,
                             csv_rows_skipped=getattr(self.feed, "skipped", 0))
        return {"gateway.prices": self.bound("gateway.prices", self.prices),
                "gateway.news": self.bound("gateway.news", self.news)}

    def _due_count(self, now: int) -> int:
        """How many ticks are due at ``now`` (open loop), capped at the batch size."""
        if self.feed.exhausted:
            return 0
        cap = self.topo.gateway.batch
        if self._by_ts:
            return self.feed.count_due(now - self._t0, cap)
        return min(cap, int((now - self._t0) / self._period) + 1 - self._k)

    def _next_due(self) -> int | None:
        if self.feed.exhausted:
            return None
        if self._by_ts:
            off = self.feed.next_offset()
            return None if off is None else self._t0 + off
        return self._t0 + int(self._k * self._period)

    def _closing_due(self, window: int) -> int | None:
        """When the next message goes: the due time of the last of the next ticks due within
        ``window`` of the first (of the first, at rates below one tick per window)."""
        if self.feed.exhausted:
            return None
        if self._by_ts:
            first = self.feed.next_offset()
            if first is None:
                return None
            n = max(1, self.feed.count_due(first + window - 1, self.topo.gateway.batch))
            return self._t0 + self.feed.offset_ahead(n)
        return self._t0 + int((self._k + self._per_message - 1) * self._period)

    def _publish_ticks(self, k: int) -> bool:
        """Send the next ``k`` due ticks: one TICK if k == 1, else one TICKS batch."""
        t0, period, k0 = self._t0, self._period, self._k
        first = self._seq + 1
        symbols = self.topo.symbols
        if k == 1:
            tick = self.feed.take_one()
            if tick is None:
                return True
            slot, bid, ask, last, size, offset = tick
            n, due = 1, t0 + offset if offset is not None else t0 + int(k0 * period)
            body = wire.encode_tick(first, symbols[slot], bid, ask, last, size, due)
        else:
            block = self.feed.take(k)
            if block is None:
                return True
            n = len(block)
            ts = [t0 + o for o in block.offsets] if block.offsets is not None else \
                 [t0 + int((k0 + i) * period) for i in range(n)]
            due = ts[0]
            if n == 1:
                body = wire.encode_tick(first, symbols[block.slots[0]], block.bids[0], block.asks[0],
                                        block.lasts[0], block.sizes[0], due)
            else:
                body = wire.encode_ticks(first, [symbols[s] for s in block.slots], block.bids, block.asks,
                                         block.lasts, block.sizes, ts)
        if not self.send_bounded(self.prices, body):
            return False
        now = clock.now_ns()
        self.lag.record(now - due)
        self._seq += n
        self._k += n
        self.counters["ticks_published"] += n
        self.counters["price_messages"] += 1
        return True

    def run(self) -> None:
        # Linux pads a normal thread's timed sleeps with 50 us of slack; a paced publisher
        # sleeps every tick, so that slack would be added latency (measured overshoot p50 77 -> 26 us).
        prctl(PR_SET_TIMERSLACK, 1)
        g = self.topo.gateway
        news_period = 1e9 / g.news_rate
        self._period = 1e9 / g.rate
        self._by_ts = g.feed.kind == "csv" and g.feed.pace == "timestamps"
        self._k = self._seq = 0
        self._late_mean = self._late_dev = 0  # how late a timed sleep ends: mean, mean deviation (ns)
        window = int(g.batch_window_us * 1000)
        # paced by rate, every message holds the same count: the ticks k * period < window after its first
        self._per_message = max(1, min(g.batch, math.ceil(window / self._period - 1e-6)))
        poller, _ = self.poller(*self.publishers)

        self._t0 = t0 = clock.now_ns()
        k_news = news_seq = 0
        next_news = t0
        last_check = t0
        self.log.info("streaming %g ticks/s (batches up to %d) and %g news/s on %d symbols",
                      g.rate, g.batch, g.news_rate, len(self.topo.symbols))
        while not self.stopping:
            now = clock.now_ns()
            for _ in range(MAX_PASSES):
                if window and ((close := self._closing_due(window)) is None or now < close):
                    break
                k = self._due_count(now)
                if k <= 0 or not self._publish_ticks(k):
                    break
            while next_news <= now:
                slot, sentiment = self.news_feed.next()
                body = wire.encode_news(news_seq + 1, self.topo.symbols[slot], sentiment, next_news)
                if not self.send_bounded(self.news, body):
                    break
                news_seq += 1  # only once sent: end of stream must not announce a message never sent
                self.counters["news_published"] += 1
                k_news += 1
                next_news = t0 + int(k_news * news_period)

            next_tick = self._closing_due(window) if window else self._next_due()
            wake = min(next_news, next_tick) if next_tick is not None else next_news
            now = clock.now_ns()
            wait = wake - now
            if wait <= SLEEP_FLOOR_NS and now - last_check > CONTROL_CHECK_NS and wait > 2 * QUIET_NS:
                # Housekeeping is due, and the tick just sent is crossing the stack: do it in the
                # quiet half of the gap, not now on the CPU the orderbook needs for that tick.
                time.sleep(wait / 2e9)
                now = clock.now_ns()
                wait = wake - now
            if wait > SLEEP_FLOOR_NS or now - last_check > CONTROL_CHECK_NS:
                events = poller.wait(max(0, wait // 1_000_000) if wait > SLEEP_FLOOR_NS else 0)
                last_check = clock.now_ns()
                self.report_progress()
                # a subscriber joining mid-stream is welcomed within CONTROL_CHECK_NS: the sends
                # in between may have taken its subscription's signal, so look whatever fired
                self.service_publishers()
                if events:
                    self.service_control()
                self.feed.prepare()  # a stage of the next block of ticks, so no tick waits for it
            elif wait > 0:
                self._sleep_until(wake, now)
        self.send_eos(self.prices, "prices", self._seq)
        self.send_eos(self.news, "news", news_seq)

    def _sleep_until(self, due: int, now: int) -> None:
        """Be awake at ``due``: sleep until ``early_ns`` before it, then spin the rest.

        A timed sleep here ends some 30 us late, now and then 90 (the vCPU's wake-up), and
        ticks carry their scheduled time, so that lateness is latency in every tick. The
        margin follows the overshoot the sleeps show, as TCP's retransmit timer follows round
        trips: its mean plus twice its mean deviation, so nine sleeps in ten end early and the
        spin is short; never more than a quarter of the wait, so fast rates spin little."""
        wait = due - now
        target = due - min(self._late_mean + 2 * self._late_dev, MAX_EARLY_NS, wait >> 2)
        if target > now:
            time.sleep((target - now) / 1e9)
            late = min(max(clock.now_ns() - target, 0), MAX_EARLY_NS)
            self._late_dev += (abs(late - self._late_mean) - self._late_dev) >> 3
            self._late_mean += (late - self._late_mean) >> 3
        now_ns = clock.now_ns
        while now_ns() < due:
            pass

    def latency_samples(self) -> dict[str, bytes]:
        return {"gateway_lag": self.lag.tobytes()}

def main(argv: Sequence[str] | None = None) -> int:
    return serve(Gateway, argv)


if __name__ == "__main__":
    sys.exit(main())
