"""The flows a configuration routes to: which ones, and loading them all as one generation.

``switchd check`` and ``switchd run`` refuse a config whose routed flows ``flows
check`` refuses; a reload loads the next generation the same way and keeps the old
one live when anything is wrong. Only the flows routes name, the flows queues send
callers to (``overflow``, ``exit_to``) and the flows they ``goto`` are loaded: an
example file lying in ``flows/`` does not stop the switch. What a flow file alone
cannot check is checked against the config here: that each ``transfer``'s extension
or ring group, each ``queue`` node's queue and each mailbox a ``voicemail`` node (or a
transfer to ``voicemail:BOX``) takes messages for exist.
"""

from __future__ import annotations

from pathlib import Path

from switchd.config import Config, missing_target
from switchd.core.routing import Target, TargetKind
from switchd.ivr.loader import (
    FlowError,
    load_flows,
    queue_targets,
    transfer_targets,
    voicemail_targets,
)
from switchd.ivr.model import FlowSet
from switchd.lines.prompts import PromptCache
from switchd.recorder.mailboxes import missing_mailbox
from switchd.yamlloc import YamlPath

__all__ = ["flow_prompt_files", "load_routed_flows", "routed_flow_names", "transfer_problems"]


def _flow_targets(cfg: Config) -> list[tuple[str, YamlPath]]:
    """(flow name, config path of the value naming it) of every ``flow:`` target in
    ``cfg``: the routes in order, then each queue's ``overflow`` and ``exit_to``."""
    out: list[tuple[str, YamlPath]] = []
    for i, route in enumerate(cfg.routes):
        if route.target.kind is TargetKind.FLOW:
            out.append((route.target.value or "", ("routes", i, "to")))
    for name, queue in cfg.acd.queues.items():
        for key, target in (("overflow", queue.overflow), ("exit_to", queue.exit_to)):
            if target is not None and target.kind is TargetKind.FLOW:
                out.append((target.value or "", ("queues", name, key)))
    return out


def routed_flow_names(cfg: Config) -> list[str]:
    """Names of the flows ``cfg`` sends calls to, each once: the routes' in route order,
    then those queues send callers to (``overflow``, ``exit_to``: the ACD redirects
    callers there, so they must be loaded and checked like a route's)."""
    out: list[str] = []
    for name, _ in _flow_targets(cfg):
        if name not in out:
            out.append(name)
    return out


def load_routed_flows(cfg: Config, *, generation: int = 0,
                      cache: PromptCache | None = None) -> FlowSet:
    """Load and check every flow ``cfg`` sends calls to (and their ``goto`` targets).

    Reads files and decodes prompts, pinned, into ``cache`` (the daemon's, so it does
    not decode them twice; None = a new one with the config's ``media.prompt_cache_mb``
    bound, so ``switchd check`` refuses what would not fit when the switch runs): call
    off the event loop. Raises FlowError (a ConfigError) with every problem as
    ``FILE:LINE:COL: message``: each missing flow blamed at the first route (or queue
    ``overflow``/``exit_to``) that names it, and every transfer or queue node whose
    target the config lacks (:func:`transfer_problems`).
    """
    if cache is None:
        cache = PromptCache(cfg.media.prompt_cache_bytes)
    names = routed_flow_names(cfg)
    if not names:
        return FlowSet({}, generation)
    places: dict[str, str] = {}
    for name, where in _flow_targets(cfg):
        mark = cfg.marks.get(where)
        if mark is not None:
            places.setdefault(name, f"{cfg.source}:{mark}")
    flows = load_flows(cfg.ivr.flows_dir, names, cfg.media.prompts_dir, generation=generation,
                       places=places, cache=cache)
    problems = transfer_problems(cfg, flows)
    if problems:
        raise FlowError(problems)
    return flows


def transfer_problems(cfg: Config, flows: FlowSet) -> list[str]:
    """Every ``transfer`` in ``flows`` whose extension or ring group is not in ``cfg``,
    every ``queue`` node whose queue ``cfg`` does not define (``queues:``), and every
    mailbox of a ``voicemail`` node or a transfer to ``voicemail:BOX`` that ``cfg`` has no
    box for (``voicemail:``), as ``FILE:LINE:COL: message`` at its ``to:`` / ``queue:`` /
    ``mailbox:`` (a flow file alone cannot know them), in file order within each flow."""
    out: list[str] = []
    for flow in flows.flows.values():
        found = [(mark, node.name, "to", text) for node, text, mark in transfer_targets(flow)]
        found += [(mark, node.name, "queue", text) for node, text, mark in queue_targets(flow)]
        found += [(mark, node.name, key, text)
                  for node, text, mark, key in voicemail_targets(flow)]
        found.sort(key=lambda t: (t[0].line, t[0].col))
        for mark, node_name, key, text in found:
            try:
                target = Target.parse(text)
            except ValueError:
                continue  # the loader has said what is wrong with it
            if target.kind is TargetKind.VOICEMAIL:
                missing = missing_mailbox(target.value or "", cfg.voicemail.boxes,
                                          source=cfg.source)
            else:
                missing = missing_target(target, cfg.board.extension_numbers, cfg.ring_groups,
                                         source=cfg.source, queues=cfg.acd.queues)
            if missing is not None:
                if key == "queue":
                    # A queue node names the queue alone: suggest what to write there.
                    missing = missing.replace("'queue:", "'")
                out.append(f"{mark}: nodes.{node_name}.{key}: {missing}")
    return out


def flow_prompt_files(flows: FlowSet) -> list[Path]:
    """Every prompt file the flows of ``flows`` may play (for preloading), each once."""
    seen: dict[Path, None] = {}
    for flow in flows.flows.values():
        for path in flow.prompt_files.values():
            seen.setdefault(path, None)
    return list(seen)
