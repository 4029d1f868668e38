"""A short chaos soak (benchmarks/soak.py) in the suite: each fault kind below once.

PostgreSQL, the signer and two server replicas behind a round-robin proxy; publishers
run ``trustctl sign`` in loops, readers fetch metadata; a signer restart, a database
restart and a replica kill are injected one at a time. Nothing acknowledged may be
lost (python-tuf's ngclient checks every acknowledged tag and digest from the pinned
root), nothing may print a traceback, no 5xx may be served outside a fault window, and
no error body may name our internals.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import PASSPHRASES, Soak
from tests.pg import PostgresCluster
from tests.secrets import remember

KINDS = ("signer-term", "pg-fast", "replica-kill", "signer-kill")


def test_short_soak_loses_nothing_and_leaks_nothing(tmp_path: Path) -> None:
    for passphrase in PASSPHRASES.values():
        remember(passphrase)  # the final log scan looks for them
    lines: list[str] = []
    with PostgresCluster.started() as cluster:
        soak = Soak(
            tmp_path,
            duration=90,  # an upper bound: it ends after each kind's fault (about 40 s)
            seed=7,
            publishers=3,
            readers=2,
            kinds=KINDS,
            gap=(3.0, 5.0),
            faults=len(KINDS),
            log=lines.append,
        )
        report = soak.run(cluster)
    print("\n" + "\n".join([*lines, *report.table(), *report.summary()]))
    assert len(report.faults) >= 3, lines
    assert sorted(f.kind for f in report.faults) == sorted(KINDS), lines
    assert report.acknowledged, "no publish was acknowledged"
    assert report.lost == []
    assert report.tracebacks == []
    assert [r.status for r in report.fives_outside()] == []
    assert report.leaky_bodies == []
    assert report.unclear_failures == []
