"""The NATS adapter: everything of the service that speaks to nats-server.

* :mod:`lrs.nats.access` - connection options (credentials, TLS) and URL redaction;
* :mod:`lrs.nats.bus` - one reconnecting client, the ``LRS_EVENTS`` stream and
  pipelined publishing;
* :mod:`lrs.nats.pull` - a pull consumer that fetches as one request;
* :mod:`lrs.nats.headers` - the fast parse of the relay's plain header blocks;
* :mod:`lrs.nats.permissions` - the server's users and their least privileges.

What a message says (subject, headers, payload) is not here but in
:mod:`lrs.event_contract`, which imports no driver.  Two speed choices reach
into nats-py's private API (``Client._send_command`` in :mod:`lrs.nats.bus`,
``Client._process_headers`` in :mod:`lrs.nats.headers`): with nats-py's
public calls instead, bench/nats_private_api.py measured about 11 µs more
CPU per message published and 7 µs more per message received (median of
five alternating rounds on a busy machine, bench/results/
nats-private-api-20261206T035235Z.json).  pyproject pins the nats-py range
they were tested with, and tests/unit/nats/test_private_api.py
and tests/integration/nats/test_private_api.py fail on a nats-py whose
internals moved.
"""
