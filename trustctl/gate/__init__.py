"""The deploy gate: a Kubernetes admission webhook that admits only signed images.

One module per job: :mod:`.review` (AdmissionReview in and out, pure), :mod:`.images`
(where images hide in a Kubernetes object, pure), :mod:`.policy` (the YAML policy and
pattern matching, pure), :mod:`.decide` (admission decisions over
:class:`trustctl.api.Verifier`, with a deadline), :mod:`.serve` (HTTPS endpoints) and
:mod:`.manifest` (the Kubernetes objects that deploy it).
"""
