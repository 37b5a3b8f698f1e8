"""OPC UA client-side conformance: each client stack against the simulator's planted faults."""
