"""The simulator's Subscription and MonitoredItem service sets (OPC UA Part 4 v1.04 §5.12, §5.13) where asyncua's deviates.

`handle(processor, typeid, requesthdr, seqhdr, body)` is called by the service layer
(`services.ConformantProcessor`) for every request of an activated session; it answers the
request (with `processor._respond` / `processor._fault`) and returns True, or returns False to
leave the request to asyncua.
"""

from __future__ import annotations


async def handle(processor, typeid, requesthdr, seqhdr, body) -> bool:
    return False
