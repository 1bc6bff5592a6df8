"""zmqtrade: a multi-process trading stack over ZeroMQ with a shared-memory price book."""

__version__ = "0.1.0"
