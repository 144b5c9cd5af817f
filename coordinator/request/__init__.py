"""One request, Flower-free: query decisions, feasibility, the SecAgg+ attempts' bookkeeping,
exact decoding, site accounting, audit and progress events.

The request talks to the sites only through :class:`fedsurv.coordinator.request.port.Federation`
(plain dicts and node ids in, plain answers out); :mod:`fedsurv.coordinator.flower` implements
it over a Flower Grid and ``SecAggPlusWorkflow``. Modules:

* :mod:`.errors`: why a request publishes nothing (``TooFewSites``, ``SecureSumFailed``, ...);
* :mod:`.options`: :class:`SecureSumOptions` (timeouts, SecAgg+ settings, roster);
* :mod:`.trace`: :class:`RoundInfo`, :class:`RequestTrace`, :class:`RequestOutcome` and the
  per-site accounting;
* :mod:`.sites`: site identity (roster names), feasibility, required sites;
* :mod:`.port`: the seam to the transport;
* :mod:`.driver`: :func:`run_request`, :func:`secagg_round`, :func:`decode_secure_sum`.
"""
