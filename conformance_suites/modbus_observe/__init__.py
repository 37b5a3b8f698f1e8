"""Modbus TCP client devices judged from the traffic `harness observe` recorded."""
