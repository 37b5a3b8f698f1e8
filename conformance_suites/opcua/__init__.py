"""OPC UA server conformance suite (OPC 10000-4/5 v1.04, 10000-6 v1.05), cases tied to Part 7 conformance units."""
