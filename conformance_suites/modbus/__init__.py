"""Modbus TCP server conformance suite (Application Protocol V1.1b3, TCP guide V1.0b)."""
