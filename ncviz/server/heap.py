"""Keep the dashboard server's garbage collection off the ticks of followed pages.

Streamlit runs a full ``gc.collect(2)`` after every script run, fragment runs included
(``runner.postScriptGC``), so that a session's cyclic garbage does not build up. With torch,
plotly and pandas imported the collector walks ~275,000 long-lived objects each time (0.18 s of
the server's single interpreter), and then every object of every open session. A page
following a live run reruns its follow fragment every 2 s: each followed page cost ~10 % of a
core while nothing changed, and about ten of them saturated the server.

So the server runs with ``runner.postScriptGC = false`` (``.streamlit/config.toml`` and
``ncviz serve``'s flags) and instead:

* :func:`freeze_imported_heap` moves what is alive after the imports into the collector's
  permanent generation (:func:`gc.freeze`, CPython's advice for long-running servers):
  module-level objects live as long as the process anyway;
* :func:`collect_after_page` collects after each full page run (``app/main.py``), where a page
  drops its figures and tables — not after the fragment ticks, which allocate almost nothing.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_imported_heap() -> bool:
    """Collect once, then freeze what survives, the first time it is called in a process.

    Returns whether this call froze the heap (later calls do nothing and return False).

    >>> import gc
    >>> froze = freeze_imported_heap()
    >>> gc.get_freeze_count() > 0
    True
    >>> freeze_imported_heap()
    False
    """
    global _frozen
    if _frozen:
        return False
    gc.collect()
    gc.freeze()
    _frozen = True
    return True


def collect_after_page() -> int:
    """A full collection of what the page run left (frozen objects are not walked); returns
    the number of unreachable objects found, as :func:`gc.collect`.

    >>> class Cycle:
    ...     pass
    >>> first, second = Cycle(), Cycle()
    >>> first.other, second.other = second, first
    >>> del first, second
    >>> collect_after_page() >= 2
    True
    """
    return gc.collect()
