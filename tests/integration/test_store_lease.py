"""The lease (ivr/store/lease.py) over both backends: one holder at a time, expiry hands it over,
the fencing token grows with every change of holder, and a node's clock does not matter."""

from __future__ import annotations

import threading
import time

import pytest
from stores import StoreSite

from ivr.store.lease import Lease


def test_one_holder_at_a_time_and_release_hands_it_over(store_site: StoreSite) -> None:
    a = Lease(store_site.backend(), "acd", "node-a", ttl=30)
    b = Lease(store_site.backend(), "acd", "node-b", ttl=30)
    assert a.holder() is None and a.current_token() == 0
    assert a.try_acquire() and a.token == 1
    assert not b.try_acquire() and b.token is None
    assert b.holder() == "node-a"
    assert a.try_acquire() and a.token == 1  # re-acquiring our own lease extends it
    assert a.renew() and a.token == 1
    assert not b.renew()  # renewing what one does not hold fails
    a.release()
    assert a.token is None and b.holder() is None
    assert b.try_acquire() and b.token == 2  # a new holder: a new token
    assert not a.try_acquire() and not a.renew()
    assert a.current_token() == 2


def _shorten(site: StoreSite, holder: str, ttl: float) -> None:
    """The holder's last renewal, with a short ttl: it expires `ttl` from now (by the server)."""
    assert Lease(site.backend(), "acd", holder, ttl=ttl).try_acquire()


def test_expiry_hands_the_lease_over_and_the_old_holder_learns_it(store_site: StoreSite) -> None:
    a = Lease(store_site.backend(), "acd", "node-a", ttl=30)
    b = Lease(store_site.backend(), "acd", "node-b", ttl=30)
    assert a.try_acquire()
    first = a.token
    assert not b.try_acquire()
    _shorten(store_site, "node-a", 0.3)  # then a stopped renewing (it died, or paused)
    time.sleep(0.6)
    assert a.holder() is None
    assert b.try_acquire() and b.token is not None and first is not None and b.token > first
    assert not a.renew() and a.token is None  # back from its pause: fenced off
    assert b.holder() == "node-b"


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_a_skewed_node_clock_neither_steals_nor_keeps_the_lease(
        store_site: StoreSite, monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    a = Lease(store_site.backend(), "acd", "node-a", ttl=30)
    b = Lease(store_site.backend(), "acd", "node-b", ttl=30)
    assert a.try_acquire()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)  # node b's clock is an hour off
    assert not b.try_acquire()  # an hour ahead, it still cannot see a's lease as expired
    assert b.holder() == "node-a"
    _shorten(store_site, "node-a", 0.5)
    deadline = time.monotonic() + 10
    while not b.try_acquire():  # an hour behind, it still sees the expiry on time
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.1)
    assert b.holder() == "node-b" and b.renew()


def test_racing_nodes_get_one_holder(store_site: StoreSite) -> None:
    leases = [Lease(store_site.backend(), "acd", f"node-{i}", ttl=60) for i in range(4)]
    won: list[str] = []
    start = threading.Barrier(len(leases))

    def contend(lease: Lease) -> None:
        start.wait()
        for _ in range(10):
            if lease.try_acquire():
                won.append(lease.me)

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(won)) == 1 and leases[0].current_token() == 1
