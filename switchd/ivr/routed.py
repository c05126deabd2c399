"""The flows a configuration routes to: which ones, and loading them all as one generation.

``switchd check`` and ``switchd run`` refuse a config whose routed flows ``flows
check`` refuses; a reload loads the next generation the same way and keeps the old
one live when anything is wrong. Only the flows routes name (and the flows they
``goto``) are loaded: an example file lying in ``flows/`` does not stop the switch.
"""

from __future__ import annotations

from pathlib import Path

from switchd.config import Config, missing_target
from switchd.core.routing import Target, TargetKind
from switchd.ivr.loader import FlowError, load_flows, transfer_targets
from switchd.ivr.model import FlowSet
from switchd.lines.prompts import PromptCache

__all__ = ["flow_prompt_files", "load_routed_flows", "routed_flow_names", "transfer_problems"]


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

    Reads files and decodes prompts, pinned, into ``cache`` (the daemon's, so it does
    not decode them twice; None = a new one with the config's ``media.prompt_cache_mb``
    bound, so ``switchd check`` refuses what would not fit when the switch runs): call
    off the event loop. Raises FlowError (a ConfigError) with every problem as
    ``FILE:LINE:COL: message``, each missing flow blamed at the route that names it.
    """
    if cache is None:
        cache = PromptCache(cfg.media.prompt_cache_bytes)
    names = routed_flow_names(cfg)
    if not names:
        return FlowSet({}, generation)
    places: dict[str, str] = {}
    for i, route in enumerate(cfg.routes):
        mark = cfg.marks.get(("routes", i, "to"))
        if route.target.kind is TargetKind.FLOW and mark is not None:
            places.setdefault(route.target.value or "", f"{cfg.source}:{mark}")
    flows = load_flows(cfg.ivr.flows_dir, names, cfg.media.prompts_dir, generation=generation,
                       places=places, cache=cache)
    problems = transfer_problems(cfg, flows)
    if problems:
        raise FlowError(problems)
    return flows


def transfer_problems(cfg: Config, flows: FlowSet) -> list[str]:
    """Every ``transfer`` in ``flows`` whose extension or ring group is not in ``cfg``, as
    ``FILE:LINE:COL: message`` at its ``to:`` (the flow file alone cannot know them)."""
    out: list[str] = []
    for flow in flows.flows.values():
        for node, text, mark in transfer_targets(flow):
            try:
                target = Target.parse(text)
            except ValueError:
                continue  # the loader has said what is wrong with it
            missing = missing_target(target, cfg.board.extension_numbers, cfg.ring_groups,
                                     source=cfg.source)
            if missing is not None:
                out.append(f"{mark}: nodes.{node.name}.to: {missing}")
    return out


def flow_prompt_files(flows: FlowSet) -> list[Path]:
    """Every prompt file the flows of ``flows`` may play (for preloading), each once."""
    seen: dict[Path, None] = {}
    for flow in flows.flows.values():
        for path in flow.prompt_files.values():
            seen.setdefault(path, None)
    return list(seen)
