"""The live event transport: the Redis Streams event log (:mod:`stream.log`), the consumer
that applies events to live segments (:mod:`stream.consumer`) and the authenticated
``POST /events`` endpoint (:mod:`stream.http`). Business rules live in
:mod:`commands.live`; this package moves events and acknowledges them."""
