"""The OPC UA face of the reference device simulator (asyncua behind our conformance layer)."""
