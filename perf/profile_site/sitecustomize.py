"""Loaded by every process of a :mod:`perf.profile` run (it puts this folder on PYTHONPATH): samples
the main thread of each zmqtrade component by CPU time, and writes the samples when it exits.
Nothing else uses it."""
import atexit
import collections
import ctypes
import os
import runpy
import signal
import sys
import threading

OUT = os.environ.get("ZMQTRADE_PROFILE_DIR")
PERIOD_NS = int(os.environ.get("ZMQTRADE_PROFILE_US", "1000")) * 1000
CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID = 3, 4


class _Sigevent(ctypes.Structure):  # struct sigevent on Linux x86-64: 64 bytes
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("tid", ctypes.c_int), ("pad", ctypes.c_int * 11)]


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


def _start(name: str) -> None:
    """A timer on this thread's CPU clock, signalling this thread: samples fall where it runs,
    never where it sleeps or waits for a CPU."""
    libc = ctypes.CDLL(None, use_errno=True)
    samples: collections.Counter = collections.Counter()

    def sample(_sig: int, frame) -> None:  # noqa: ANN001
        stack = []
        while frame is not None:
            code = frame.f_code
            stack.append(f"{os.path.basename(code.co_filename)}:{code.co_name}")
            frame = frame.f_back
        samples[";".join(reversed(stack))] += 1

    signal.signal(signal.SIGPROF, sample)
    event = _Sigevent(signo=signal.SIGPROF, notify=SIGEV_THREAD_ID, tid=threading.get_native_id())
    timer = ctypes.c_void_p()
    if libc.timer_create(CLOCK_THREAD_CPUTIME_ID, ctypes.byref(event), ctypes.byref(timer)) != 0:
        raise OSError(ctypes.get_errno(), "timer_create")
    period = _Timespec(0, PERIOD_NS)
    libc.timer_settime(timer, 0, ctypes.byref(_Itimerspec(period, period)), None)

    def write() -> None:
        libc.timer_delete(timer)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        with open(os.path.join(OUT, f"{name}.{os.getpid()}.samples"), "w") as fh:
            fh.writelines(f"{stack} {n}\n" for stack, n in samples.items())

    atexit.register(write)


def _run_module_as_main(mod_name: str, alter_argv: bool = True):  # noqa: ANN202
    """Run a zmqtrade component as an imported module, sampled; anything else as usual."""
    component = mod_name.removeprefix("zmqtrade.")
    if not OUT or component == mod_name or "." in component or component in ("report", "launch"):
        return _orig(mod_name, alter_argv)
    import importlib

    module = importlib.import_module(mod_name)
    if alter_argv:
        sys.argv[0] = module.__file__
    name = sys.argv[sys.argv.index("--name") + 1] if "--name" in sys.argv[:-1] else component
    _start(name)
    sys.exit(module.main())


_orig = runpy._run_module_as_main
runpy._run_module_as_main = _run_module_as_main
