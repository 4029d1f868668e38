"""Notary v1's dialect of TUF: a second, native data model served next to TUF 1.0.

A repository is in one dialect for life, fixed by its first stored root (DESIGN
section 9). Notary's metadata (the notary CLI 0.7.0 and ``docker trust``) is parsed,
checked and generated here, never translated into TUF 1.0 objects: translation would
change the signed bytes. Modules:

* :mod:`~notary_server.notary.model`: pure parsing of Notary's JSON (keys with
  recomputed ids, x509 root certificates, raw r||s ECDSA signatures with a
  ``method``, the four role types).
* :mod:`~notary_server.notary.validation`: the server's upload rules (reference
  section 3) plus delegation paths checked as prefixes.
* :mod:`~notary_server.notary.generate`: server-held snapshot and timestamp payloads.
* :mod:`~notary_server.notary.dialect`: which dialect a repository or request is in.
* :mod:`~notary_server.notary.service`: the use cases (publish, renew, keys).
"""
