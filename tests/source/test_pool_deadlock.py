"""exchangelib 5.6.0's decrease_poolsize() deadlocks when every session is out (see protocol.py)."""

from __future__ import annotations

import threading

import requests
from exchangelib import BASIC, Configuration, Credentials

from exchange_sync.sources.ews.protocol import make_protocol_class, new_protocol


def test_decrease_poolsize_waits_for_a_returned_session_instead_of_deadlocking():
    cls = make_protocol_class(adapter_cls=requests.adapters.HTTPAdapter, verify=True, timeout_s=5, retry_wait_s=1)
    config = Configuration(service_endpoint="https://127.0.0.1:9/EWS/Exchange.asmx",
                           credentials=Credentials("u", "p"), auth_type=BASIC, max_connections=4)
    protocol = new_protocol(cls, config)
    first, second = protocol.get_session(), protocol.get_session()  # pool: 2 of 4, both out
    assert protocol.session_pool_size == 2
    done = threading.Event()

    def shrink() -> None:
        protocol.decrease_poolsize()  # exchangelib's own version blocks forever here
        done.set()

    worker = threading.Thread(target=shrink, daemon=True)
    worker.start()
    protocol.release_session(first)  # another thread finishing its request
    assert done.wait(timeout=30), "decrease_poolsize deadlocked"
    assert protocol.session_pool_size == 1
    protocol.release_session(second)
    protocol.close()
