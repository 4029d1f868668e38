"""Notary v1's metadata dialect on the client side (Docker Content Trust repositories).

A repository is in one dialect for life (DESIGN section 9). This package reads and
verifies Notary's dialect by Notary's client rules, never by translating it into
TUF 1.0 objects (translation would change the signed bytes):

* :mod:`trustctl.notary.model`: pure parsing and checks of the wire format
  (base64 fields, key ids recomputed, raw r||s ECDSA, x509 root certificates,
  capitalised types, RFC 3339 expiry, prefix delegation paths);
* :mod:`trustctl.notary.pinning`: how a deployer anchors trust (certificate ids, a CA
  bundle, or an explicit trust on first use);
* :mod:`trustctl.notary.updater`: the client workflow (versioned root walk, then
  timestamp, snapshot and targets by hash, delegations), with rollback protection
  from the cached state;
* :mod:`trustctl.notary.verify`: ``verify``/``pull``/``inspect`` answers in the same
  shape as for TUF 1.0 repositories;
* :mod:`trustctl.notary.keyfiles`: Notary's and Docker's private key files;
* :mod:`trustctl.notary.migrate`: the verified upgrade of a repository to TUF 1.0.

Reference: ``reference/notary-v1.md`` sections 1a, 3 and 5.
"""
