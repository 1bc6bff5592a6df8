"""A poller that costs one ``epoll_wait`` per wake-up, however many sockets a process listens on.

``zmq.Poller`` asks every registered socket for its events on every call, before and after
it sleeps: each ask is a trip into libzmq that polls the socket's mailbox (``poll``, ``getpid``),
so with four sockets a wake-up costs some ten syscalls before any message is read. Here
each ZeroMQ socket's ``ZMQ_FD`` (its mailbox) and any plain descriptor (a pipe doorbell) sit in
one epoll set, and only sockets whose descriptor fired are returned.

``ZMQ_FD`` says "look at this socket", not "a message is here", and it is reset by any call
that processes the socket's commands, a ``send`` included. So the contract is libzmq's own
(zmq_getsockopt(3), ZMQ_FD): a socket returned by :meth:`Poller.wait` may hold input, and
the caller reads it until EAGAIN; a socket the caller sent on, or stopped reading before
EAGAIN, is passed to :meth:`Poller.touched`, and is asked for its events before the next
sleep. Every idle timeout also asks every socket, so a missed ``touched`` costs one timeout,
never a hang.
"""
from __future__ import annotations

import select
from typing import Union

import zmq

Source = Union[zmq.Socket, int]
"""A ZeroMQ socket, or a plain file descriptor (readable = ready)."""
EVENTS, POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
"""As ints: and-ing pyzmq's flag enums makes a new enum each time, a microsecond per look."""


class Poller:
    __slots__ = ("_epoll", "_by_fd", "_sockets", "_touched")

    def __init__(self, *sources: Source) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, Source] = {}
        self._sockets: list[zmq.Socket] = []
        self._touched: set[zmq.Socket] = set()
        for s in sources:
            self.add(s)

    def add(self, source: Source) -> None:
        if isinstance(source, zmq.Socket):
            fd = source.getsockopt(zmq.FD)
            self._sockets.append(source)
            self._touched.add(source)  # it may already hold input that signalled before we listened
        else:
            fd = source
        self._by_fd[fd] = source
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, source: Source) -> None:
        fd = source.getsockopt(zmq.FD) if isinstance(source, zmq.Socket) else source
        self._by_fd.pop(fd, None)
        self._epoll.unregister(fd)
        if isinstance(source, zmq.Socket):
            self._sockets.remove(source)
            self._touched.discard(source)

    def touched(self, sock: zmq.Socket) -> None:
        """``sock`` was sent on, or read short of EAGAIN: ask it for input before sleeping again."""
        self._touched.add(sock)

    def settled(self, sock: zmq.Socket) -> None:
        """``sock`` was just read to EAGAIN, after any send: its descriptor is armed again."""
        self._touched.discard(sock)

    def more(self, sock: zmq.Socket) -> bool:
        """Whether ``sock`` holds more input: half the cost of a receive that fails (no
        exception), and when it says no, the socket is settled (its descriptor armed again)."""
        if sock.get(EVENTS) & POLLIN:
            return True
        self._touched.discard(sock)
        return False

    def wait(self, timeout_ms: int) -> set[Source]:
        """The sources that may hold input, waiting up to ``timeout_ms`` for one (0: don't wait)."""
        ready: set[Source] = set()
        if self._touched:
            for sock in self._touched:
                if sock.get(EVENTS) & POLLIN:
                    ready.add(sock)
            self._touched.clear()
        events = self._epoll.poll(0 if ready else timeout_ms / 1000)
        if events:
            by_fd = self._by_fd
            for fd, _ in events:
                ready.add(by_fd[fd])
        elif not ready and timeout_ms > 0:  # an idle timeout: the safety net for a missed ``touched``
            for sock in self._sockets:
                if sock.get(EVENTS) & POLLIN:
                    ready.add(sock)
        return ready

    def close(self) -> None:
        self._epoll.close()
