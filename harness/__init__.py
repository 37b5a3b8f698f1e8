"""Protocol-compatibility test harness for industrial devices (the engine)."""

__version__ = "0.1.0"
