"""Client adapters: one interface per protocol, one module per third-party client stack.

Each stack is imported lazily inside its module and its errors are mapped at the boundary to
the types of `errors`, so a scenario or a client-side conformance case is written once and
runs against every stack.  `registry` lists the stacks and how to make a client of each.
"""
