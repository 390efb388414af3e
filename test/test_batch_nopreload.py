"""Bulk verification without shared_preload_libraries (README "Bulk
verification"): the batch runs in the session alone — its own connection pool
and token — with the same results and the same limits as when preloaded."""
from contextlib import closing

from psycopg2.extras import Json

from support.util import code


def test_batch_without_preload(env):
    cl = env.nopreload_cluster()
    src = code("batchnopre")
    env.add_source(src, cluster=cl, registry_type="ns:org:RegistryType:Civil")
    env.mock.reset()
    env.mock.search_conf(delay=0.02)
    values = ["%09d" % (i * 11) for i in range(1, 301)]
    with closing(env.connect(cl)) as conn:
        cur = conn.cursor()
        cur.execute("SELECT ord, status, records FROM dci_search_batch(%s, 'idtype-value', %s, "
                    "batch_size => 50, concurrency => 3)",
                    (src, Json([{"type": "UIN", "value": v} for v in values])))
        rows = cur.fetchall()
        cur.execute("SELECT shared FROM dci_token_status WHERE source = %s", (src,))
        assert cur.fetchone() == (False,), "the nopreload cluster shares tokens: it is preloaded"
    assert [r[0] for r in rows] == list(range(1, 301))
    for (ord_, status, records), v in zip(rows, values):
        assert status == "succ", (ord_, status)
        assert records[0]["identifier"][0]["identifier_value"] == v, (ord_, records)
    s = env.mock.stats()
    assert s["search"]["envelopes"] == 6 and s["search"]["items"] == 300, s["search"]
    assert 2 <= s["search"]["max_inflight"] <= 3, s["search"]
    assert s["token_requests"] == 1, s["token_requests"]
