"""The flows a configuration routes to: which ones, and loading them all as one generation.

``switchd check`` and ``switchd run`` refuse a config whose routed flows ``flows
check`` refuses; a reload loads the next generation the same way and keeps the old
one live when anything is wrong. Only the flows routes name (and the flows they
``goto``) are loaded: an example file lying in ``flows/`` does not stop the switch.
"""

from __future__ import annotations

from pathlib import Path

from switchd.config import Config
from switchd.core.routing import TargetKind
from switchd.ivr.loader import load_flows
from switchd.ivr.model import FlowSet
from switchd.lines.prompts import PromptCache

__all__ = ["flow_prompt_files", "load_routed_flows", "routed_flow_names"]


def routed_flow_names(cfg: Config) -> list[str]:
    """Names of the flows ``cfg.routes`` send calls to, in route order, each once."""
    out: list[str] = []
    for route in cfg.routes:
        if route.target.kind is TargetKind.FLOW and route.target.value not in out:
            out.append(route.target.value or "")
    return out


def load_routed_flows(cfg: Config, *, generation: int = 0,
                      cache: PromptCache | None = None) -> FlowSet:
    """Load and check every flow ``cfg`` routes to (and their ``goto`` targets).

    Reads files and decodes prompts (into ``cache`` when given, pinned, so the
    daemon does not decode them twice): call off the event loop. Raises FlowError
    (a ConfigError) with every problem as ``FILE:LINE:COL: message``, each missing
    flow blamed at the route that names it.
    """
    names = routed_flow_names(cfg)
    if not names:
        return FlowSet({}, generation)
    places: dict[str, str] = {}
    for i, route in enumerate(cfg.routes):
        mark = cfg.marks.get(("routes", i, "to"))
        if route.target.kind is TargetKind.FLOW and mark is not None:
            places.setdefault(route.target.value or "", f"{cfg.source}:{mark}")
    return load_flows(cfg.ivr.flows_dir, names, cfg.media.prompts_dir, generation=generation,
                      places=places, cache=cache)


def flow_prompt_files(flows: FlowSet) -> list[Path]:
    """Every prompt file the flows of ``flows`` may play (for preloading), each once."""
    seen: dict[Path, None] = {}
    for flow in flows.flows.values():
        for path in flow.prompt_files.values():
            seen.setdefault(path, None)
    return list(seen)
