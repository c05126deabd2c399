"""Erlang B, C and A, computed exactly: the yardstick ``switchd sim`` is checked against.

Pure Python (``math`` only), no I/O. Traffic ``a`` is offered load in Erlangs
(arrival rate × mean holding time), ``n`` a number of servers (trunks for Erlang B,
agents for C and A). Times are seconds.

* **Erlang B** (M/M/n/n, blocked calls cleared): the recursion
  ``B(0) = 1``, ``B(k) = a·B(k−1) / (k + a·B(k−1))`` (Jagerman 1974), which never
  forms a factorial and is stable for any ``n``. Insensitive to the holding-time
  distribution.
* **Erlang C** (M/M/n, blocked calls wait, infinite patience):
  ``C = n·B / (n − a·(1 − B))`` for ``a < n`` (Cooper, *Introduction to Queueing
  Theory*, 2nd ed., §3.4); the wait of a caller who waits is exponential with rate
  ``(n − a)/AHT``, hence ``SL(t) = 1 − C·exp(−(n − a)·t/AHT)`` and
  ``ASA = C·AHT/(n − a)``.
* **Erlang A** (M/M/n+M, Palm 1946; Garnett, Mandelbaum & Reiman, *Designing a call
  center with impatient customers*, MSOM 4(3), 2002): callers abandon after an
  exponential patience of mean ``1/θ``. Solved here as the birth-death chain of the
  number of callers in the system: birth rate ``λ``, death rate ``k·μ`` up to ``n``
  and ``n·μ + (k − n)·θ`` above, truncated where the terms no longer change the sums
  (``K`` = ``trunks`` when the trunks are finite: M/M/n/K+M, arrivals finding every
  trunk busy are blocked). By PASTA an arrival sees the stationary distribution, so
  ``P(wait > 0) = P(k ≥ n | k < K)``; by Little ``E[W] = E[Q]/λ'`` (λ' the admitted
  rate) and, since every waiting caller abandons at rate θ,
  ``P(abandon) = θ·E[Q]/λ'``.
  The service level and the ASA follow the *tagged caller*: arriving behind ``j``
  waiting callers, the line ahead shortens at rate ``n·μ + i·θ`` (a service or an
  abandon ahead, ``i`` ahead) while the caller's own patience runs out at rate θ.
  The ASA is exact by first-step analysis; the service level uses uniformization
  (Grassmann 1977) of that absorbing chain over ``[0, T]``.

Every function raises ValueError naming the bad argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "QueueFigures",
    "asa_c",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "queue_figures",
    "service_level_c",
]

#: Stop summing a tail when its next term changes the sum by less than this share.
_EPS = 1e-17
#: Work limit (states × uniformization steps) for the service level of the general chain;
#: beyond it the service level is reported as unknown (None) instead of taking minutes.
_SL_WORK_LIMIT = 50_000_000


def _check_n(n: int, what: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {n!r}")


def _check_pos(x: float, what: str, *, zero: bool = False) -> None:
    ok = (x >= 0 if zero else x > 0) and math.isfinite(x)
    if not ok:
        raise ValueError(f"{what} must be a finite number {'>=' if zero else '>'} 0, got {x!r}")


def erlang_b(n: int, a: float) -> float:
    """Blocking probability of ``n`` servers offered ``a`` Erlangs (Erlang B, M/M/n/n).

    ``erlang_b(8, 5) == 0.0700478522…``. ValueError for ``n`` < 0 or ``a`` < 0.
    """
    _check_n(n)
    _check_pos(a, "a (offered Erlangs)", zero=True)
    b = 1.0
    for k in range(1, n + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def erlang_c(n: int, a: float) -> float:
    """Probability that a caller waits (P(W > 0)) with ``n`` agents and ``a`` Erlangs, infinite
    patience (Erlang C, M/M/n). 1.0 when ``a >= n`` (the queue grows without bound).

    ValueError for ``n`` < 1 or ``a`` < 0.
    """
    _check_n(n)
    if n < 1:
        raise ValueError("n (agents) must be >= 1 for Erlang C")
    _check_pos(a, "a (offered Erlangs)", zero=True)
    if a >= n:
        return 1.0
    b = erlang_b(n, a)
    return n * b / (n - a * (1.0 - b))


def service_level_c(n: int, a: float, aht_s: float, t_s: float) -> float:
    """Share of callers answered within ``t_s`` seconds (P(W ≤ t)) under Erlang C, mean
    talk ``aht_s``. 0.0 when ``a >= n``. ValueError for a bad argument."""
    _check_pos(aht_s, "aht_s")
    _check_pos(t_s, "t_s", zero=True)
    c = erlang_c(n, a)
    if a >= n:
        return 0.0
    return 1.0 - c * math.exp(-(n - a) * t_s / aht_s)


def asa_c(n: int, a: float, aht_s: float) -> float:
    """Average speed of answer (mean wait of all callers, s) under Erlang C; ``inf`` when
    ``a >= n``. ValueError for a bad argument."""
    _check_pos(aht_s, "aht_s")
    c = erlang_c(n, a)
    if a >= n:
        return math.inf
    return c * aht_s / (n - a)


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """Stationary figures of a queue (probabilities in [0, 1], times in s).

    ``p_block``: share of arrivals finding every trunk busy (0 with unlimited trunks).
    The others are over the callers *not* blocked: ``p_wait`` P(W > 0); ``p_abandon``
    P(hang up before an answer); ``mean_wait_s`` E[W] of every caller, an abandoned
    one up to its abandon; ``asa_s`` mean wait of the answered; ``service_level``
    share answered within the target (SL3 of REFERENCE.md over callers let in), None
    when too costly to compute. ``stable`` False: infinite patience, unlimited trunks
    and ``a >= n``: the queue grows without bound (waits are ``inf``).
    """

    p_block: float
    p_wait: float
    p_abandon: float
    mean_wait_s: float
    asa_s: float
    service_level: float | None
    stable: bool = True


def erlang_a(n: int, a: float, aht_s: float, patience_s: float, *,
             target_s: float = 20.0) -> QueueFigures:
    """Erlang A (M/M/n+M): ``n`` agents, ``a`` Erlangs, mean talk ``aht_s``, exponential
    patience of mean ``patience_s``; unlimited trunks. See :func:`queue_figures`."""
    _check_pos(patience_s, "patience_s")
    return queue_figures(n, a, aht_s, patience_s=patience_s, target_s=target_s)


def queue_figures(n: int, a: float, aht_s: float, *, patience_s: float | None = None,
                  trunks: int | None = None, target_s: float = 20.0) -> QueueFigures:
    """Exact figures of the M/M/n/K+M queue: Erlang C (``patience_s`` None, ``trunks``
    None), Erlang A (``patience_s`` set), and with ``trunks`` = K finite, the callers that
    find K calls in the system blocked (Erlang B when ``trunks <= n``).

    ``n`` agents (>= 1), ``a`` offered Erlangs (arrival rate × ``aht_s``), ``aht_s``
    mean talk time, ``patience_s`` mean patience (None: infinite), ``trunks`` calls the
    system holds at once, waiting or talking (None: unlimited), ``target_s`` the
    service-level threshold. ValueError naming a bad argument.
    """
    _check_n(n)
    if n < 1:
        raise ValueError("n (agents) must be >= 1")
    _check_pos(a, "a (offered Erlangs)", zero=True)
    _check_pos(aht_s, "aht_s")
    _check_pos(target_s, "target_s", zero=True)
    if patience_s is not None:
        _check_pos(patience_s, "patience_s")
    if trunks is not None:
        _check_n(trunks, "trunks")
        if trunks < 1:
            raise ValueError("trunks must be >= 1 (None: unlimited)")
    if a == 0:
        return QueueFigures(0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    if trunks is not None and trunks <= n:
        # Nobody ever waits: the loss system of the trunks (Erlang B).
        return QueueFigures(erlang_b(trunks, a), 0.0, 0.0, 0.0, 0.0, 1.0)
    if patience_s is None and trunks is None:
        if a >= n:
            return QueueFigures(0.0, 1.0, 0.0, math.inf, math.inf, 0.0, stable=False)
        return QueueFigures(0.0, erlang_c(n, a), 0.0, asa_c(n, a, aht_s), asa_c(n, a, aht_s),
                            service_level_c(n, a, aht_s, target_s))
    return _chain(n, a, aht_s, patience_s, trunks, target_s)


def _chain(n: int, a: float, aht_s: float, patience_s: float | None, trunks: int | None,
           target_s: float) -> QueueFigures:
    """The birth-death chain above ``n`` (some patience or finite trunks > n)."""
    mu = 1.0 / aht_s
    lam = a * mu
    theta = 0.0 if patience_s is None else 1.0 / patience_s
    beta = theta / mu  # abandon rate per waiting caller, in units of μ
    # t[j] = π(n + j) / π(n): the product of λ/(nμ + iθ) for i = 1..j.
    t = [1.0]
    total = 1.0
    limit = None if trunks is None else trunks - n
    j = 0
    while limit is None or j < limit:
        j += 1
        ratio = a / (n + j * beta)
        nxt = t[-1] * ratio
        t.append(nxt)
        total += nxt
        if ratio < 0.9 and nxt < _EPS * total:
            # The rest is a tail shrinking faster than 0.9^k: below 10·_EPS of the sum.
            limit = None
            break
    # Below n: sum of π(k)/π(n) for k = 0..n is 1/B(n, a); written with B so that a
    # tiny B (a << n) makes every figure above n vanish instead of overflowing.
    b = erlang_b(n, a)
    pi_n = b / (1.0 + b * (total - 1.0))
    p = [pi_n * x for x in t]           # π(n + j), j = 0..len-1
    p_block = p[-1] if limit is not None else 0.0
    admitted = 1.0 - p_block
    # Arrivals let in that wait see j = 0..(K−n−1) callers ahead: every p but the last
    # when trunks are finite (that state blocks), all of them otherwise.
    waiting = p[:-1] if limit is not None else p
    p_wait = sum(waiting) / admitted
    mean_q = sum(j * x for j, x in enumerate(p))
    mean_wait = mean_q / (lam * admitted)
    p_abandon = theta * mean_q / (lam * admitted)
    # Tagged caller behind i: served with prob s_i, E[W·1{served}] = m_i (first step).
    n_mu = n * mu
    s_prev = m_prev = 0.0
    served = time_served = 0.0
    for i, w in enumerate(waiting):
        rate = n_mu + (i + 1) * theta
        advance = (n_mu + i * theta) / rate
        if i == 0:
            s_i = n_mu / rate
            m_i = s_i / rate
        else:
            s_i = advance * s_prev
            m_i = s_i / rate + advance * m_prev
        served += w * s_i
        time_served += w * m_i
        s_prev, m_prev = s_i, m_i
    no_wait = admitted - sum(waiting)
    answered = no_wait + served
    asa = time_served / answered if answered > 0 else 0.0
    sl = _service_level(n_mu, theta, waiting, target_s)
    service_level = None if sl is None else (no_wait + sl) / admitted
    return QueueFigures(p_block, p_wait, p_abandon, mean_wait, asa, service_level)


def _service_level(n_mu: float, theta: float, waiting: list[float],
                   target_s: float) -> float | None:
    """Mass of the waiting arrivals (weights ``waiting[j]``, j ahead) answered within
    ``target_s``: uniformization of the tagged caller's absorbing chain."""
    # Drop the negligible tail so the vector stays short.
    total = sum(waiting)
    if total == 0.0 or target_s == 0.0:
        return 0.0
    m = len(waiting)
    while m > 1 and waiting[m - 1] < _EPS * total:
        m -= 1
    x = list(waiting[:m])
    adv = [n_mu + i * theta for i in range(m)]
    uni = adv[-1] + theta   # the largest total rate out of a state
    lt = uni * target_s
    steps = int(lt + 12.0 * math.sqrt(lt) + 30)
    if steps * m > _SL_WORK_LIMIT:
        return None
    stay = [1.0 - (adv[i] + theta) / uni for i in range(m)]
    move = [adv[i] / uni for i in range(m)]
    served = 0.0
    result = 0.0
    log_lt = math.log(lt)
    for k in range(steps + 1):
        # Poisson(k; λT) in logs: e^(−λT) underflows for λT > 745.
        w = math.exp(-lt + k * log_lt - math.lgamma(k + 1))
        result += w * served
        served += x[0] * move[0]
        x = [x[i] * stay[i] + x[i + 1] * move[i + 1] for i in range(m - 1)] + [x[-1] * stay[-1]]
    return result
