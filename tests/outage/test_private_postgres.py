"""The private cluster the outage and soak tests stop and restart behaves as they expect."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.private_postgres import private_postgres


def test_a_private_cluster_stops_and_comes_back_on_its_port_with_its_data() -> None:
    with private_postgres() as cluster:
        directory = cluster.directory
        with psycopg.connect(cluster.conninfo, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (value int)")
            connection.execute("INSERT INTO kept VALUES (42)")
        port = cluster.port

        cluster.stop("immediate")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.conninfo, connect_timeout=2)

        cluster.start()
        assert cluster.port == port
        with psycopg.connect(cluster.conninfo) as connection:
            assert connection.execute("SELECT value FROM kept").fetchall() == [(42,)]
    assert not directory.exists()
