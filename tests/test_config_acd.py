"""The ACD's config: `queues:` and `agents:` into AcdSettings, routes to queues (switchd.config)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest

from switchd.acd.model import (
    AcdSettings,
    AgentSettings,
    PenaltyRule,
    QueueSettings,
    SeatClass,
    Strategy,
)
from switchd.config import (
    Config,
    config_summary,
    config_warnings,
    load_config,
    missing_target,
    parse_config,
)
from switchd.core.routing import Target, TargetKind
from switchd.exceptions import ConfigError
from switchd.ivr import say

REPO = Path(__file__).resolve().parent.parent

#: The queue prompts a queue may name, in both languages.
QUEUE_PROMPTS = ("queue_greeting", "queue_periodic", "queue_position_before",
                 "queue_position_after")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A config folder of its own: prompts (the queue prompts and every `say` fragment,
    zh and en), flows/main.yaml, and the current directory, so FILE is 'c.yaml'."""
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "prompts"
    for lang in ("zh", "en"):
        (prompts / lang / "say").mkdir(parents=True)
        for name in QUEUE_PROMPTS:
            (prompts / lang / f"{name}.wav").write_bytes(b"")
        for fragment in say.all_fragments(lang):
            (prompts / f"{fragment}.wav").write_bytes(b"")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text("start: x\n", encoding="utf-8")
    return tmp_path


def _write(home: Path, text: str) -> str:
    (home / "c.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return "c.yaml"


def _problems(home: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(_write(home, text))
    return info.value.problems


# --- a valid configuration ------------------------------------------------------

FULL = """
queues:
  sales:
    strategy: skills
    ring_timeout_s: 12
    wrapup_s: 10
    max_wait_s: 300
    max_len: 20
    overflow: queue:support
    join_empty: false
    leave_empty: true
    vip_priority: 7
    sticky_wait_s: 10
    rona_after: 3
    service_level_s: 25
    penalty_rules:
      - {after_s: 0, min_penalty: 0, max_penalty: 0}
      - {after_s: 30, max_penalty: 1}
      - {after_s: 90.5, min_penalty: 1}
    music: false
    language: en
    greeting: [en/queue_greeting, zh/queue_greeting]
    announce_position_every_s: 60
    periodic: en/queue_periodic
    periodic_every_s: 45
    exit_key: "#"
    exit_to: flow:main
  support:
  backline: {strategy: round_robin, overflow: extension:208, announce_position_every_s: 30}
agents:
  - id: "1001"
    name: Alice
    extension: 201
    seat: expert
    queues: {sales: 0, support: 1}
    wrapup_s: 3
    weight: 2.5
    login: true
  - {id: bob.b@x, queues: {support: 0, backline: 4}}
routes:
  - {dnis: "8001", to: queue:sales}
  - {to: queue:backline}
"""


def _positions(prompts: Path, lang: str) -> tuple[tuple[Path, ...], ...]:
    return tuple(
        (prompts / lang / "queue_position_before.wav",
         *(prompts / f"{f}.wav" for f in say.fragments("number", str(n), lang)),
         prompts / lang / "queue_position_after.wav")
        for n in range(1, 21)
    )


def test_a_full_example_gives_the_exact_acd_settings(home):
    cfg = load_config(_write(home, FULL))
    p = home / "prompts"
    assert cfg.acd == AcdSettings(
        queues=MappingProxyType({
            "sales": QueueSettings(
                name="sales",
                strategy=Strategy.SKILLS,
                ring_timeout_s=12.0,
                wrapup_s=10.0,
                max_wait_s=300.0,
                max_len=20,
                overflow=Target(TargetKind.QUEUE, "support"),
                join_empty=False,
                leave_empty=True,
                vip_priority=7,
                sticky_wait_s=10.0,
                rona_after=3,
                service_level_s=25.0,
                penalty_rules=(PenaltyRule(0.0, 0, 0), PenaltyRule(30.0, 0, 1),
                               PenaltyRule(90.5, 1, 2**31 - 1)),
                music=False,
                greeting=(p / "en/queue_greeting.wav", p / "zh/queue_greeting.wav"),
                announce_position_every_s=60.0,
                position_files=_positions(p, "en"),
                periodic=(p / "en/queue_periodic.wav",),
                periodic_every_s=45.0,
                exit_key="#",
                exit_to=Target(TargetKind.FLOW, "main"),
            ),
            # `support:` with nothing under it: every default.
            "support": QueueSettings(name="support"),
            "backline": QueueSettings(
                name="backline",
                strategy=Strategy.ROUND_ROBIN,
                overflow=Target(TargetKind.EXTENSION, "208"),
                announce_position_every_s=30.0,
                position_files=_positions(p, "zh"),
            ),
        }),
        agents=(
            AgentSettings(agent_id="1001", name="Alice", extension=201, seat=SeatClass.EXPERT,
                          queues=MappingProxyType({"sales": 0, "support": 1}), wrapup_s=3.0,
                          weight=2.5, login=True),
            AgentSettings(agent_id="bob.b@x",
                          queues=MappingProxyType({"support": 0, "backline": 4})),
        ),
    )
    assert list(cfg.acd.queues) == ["sales", "support", "backline"]  # file order
    assert [str(r.target) for r in cfg.routes] == ["queue:sales", "queue:backline"]
    assert cfg.routes[0].target == Target(TargetKind.QUEUE, "sales")


def test_position_announcements_say_the_number_in_the_queue_language(home):
    cfg = load_config(_write(home, FULL))
    p = home / "prompts"
    en = cfg.acd.queues["sales"].position_files
    zh = cfg.acd.queues["backline"].position_files
    before, after = p / "zh/queue_position_before.wav", p / "zh/queue_position_after.wav"
    # Spelt out here, not derived: 十二 is "ten two", 二十 "two ten".
    assert zh[0] == (before, p / "zh/say/1.wav", after)
    assert zh[11] == (before, p / "zh/say/ten.wav", p / "zh/say/2.wav", after)
    assert zh[19] == (before, p / "zh/say/2.wav", p / "zh/say/ten.wav", after)
    assert en[11] == (p / "en/queue_position_before.wav", p / "en/say/12.wav",
                      p / "en/queue_position_after.wav")
    assert len(zh) == len(en) == 20
    # Without announcements nothing is resolved (and no prompt is needed).
    assert cfg.acd.queues["support"].position_files == ()


def test_no_queues_and_no_agents_is_the_default(home):
    cfg = load_config(_write(home, "queues:\nagents:\n"))
    assert cfg.acd == AcdSettings()
    assert cfg == dataclasses.replace(Config(), source=Path("c.yaml"), marks=cfg.marks)


def test_summary_counts_queues_and_agents(home):
    cfg = load_config(_write(home, FULL))
    assert config_summary(cfg) == (
        "c.yaml: ok — 8 trunks, 8 extensions (201-208), 2 routes, 0 ring groups, "
        "3 queues, 2 agents, 0 users, cti 127.0.0.1:7070"
    )
    one = parse_config("queues: {q: {}}\nagents: [{id: a, queues: {q: 0}}]\n", Path("x.yaml"))
    assert ", 1 queue, 1 agent, " in config_summary(one)


def test_a_queue_no_agent_belongs_to_is_a_warning(home):
    cfg = load_config(_write(home, "queues:\n  sales: {}\n  idle: {}\n"
                                   "agents:\n  - {id: a, queues: {sales: 0}}\n"))
    assert [w for w in config_warnings(cfg) if "queues." in w] == [
        "c.yaml:3:9: warning: queues.idle: no agent has this queue in its queues, so no agent "
        "is offered its callers; add it to the queues of the agents who answer them"
    ]


def test_missing_target_knows_queues_for_flow_files():
    """What routed.py uses to check a flow's `queue` node against the config."""
    target = Target(TargetKind.QUEUE, "sale")
    assert missing_target(target, None, None, queues=["sales", "support"],
                          source=Path("config.yaml")) == (
        "no queue 'sale' in config.yaml; did you mean 'queue:sales'? (queues: sales, support)"
    )
    assert missing_target(Target(TargetKind.QUEUE, "sales"), None, None, queues=["sales"]) is None
    # Queues not known: not checked (as for groups).
    assert missing_target(target, None, None) is None


# --- broken configurations: every problem at its FILE:LINE:COL --------------------

STRATEGIES = ("ringall, longest_idle, round_robin, fewest_calls, least_talk_time, linear, "
              "random, weighted_random, skills")

BROKEN = [
    pytest.param(
        """
        queues:
          sales: {strategy: longest_idel}
        """,
        ["c.yaml:2:21: queues.sales.strategy: unknown strategy 'longest_idel'; did you mean "
         f"'longest_idle'? (use one of {STRATEGIES})"],
        id="unknown-strategy",
    ),
    pytest.param(
        """
        queues: {sales: {}, support: {}}
        agents:
          - {id: "1001", queues: {sales: 0, suport: 1}}
        """,
        ["c.yaml:3:37: agents[0].queues: no queue 'suport'; did you mean 'support'? "
         "(queues: sales, support)"],
        id="unknown-queue-in-agent",
    ),
    pytest.param(
        """
        agents:
          - {id: "1001"}
          - {id: "1002"}
          - {id: "1001"}
        """,
        ["c.yaml:4:10: agents[2].id: duplicate agent id '1001' (first at line 2)"],
        id="duplicate-agent-id",
    ),
    pytest.param(
        """
        agents:
          - {id: "1001", extension: 201}
          - id: "1002"
            extension: 201
        """,
        ["c.yaml:4:16: agents[1].extension: extension 201 already has agent '1001' (line 2); "
         "one agent per extension"],
        id="two-agents-one-extension",
    ),
    pytest.param(
        """
        agents:
          - {id: "1001", extension: 209}
        """,
        ["c.yaml:2:29: agents[0].extension: 209 is not an extension on the board "
         "(extensions: 201-208)"],
        id="extension-not-on-board",
    ),
    pytest.param(
        """
        queues:
          sales: {overflow: queue:suport}
          support: {}
        """,
        ["c.yaml:2:21: queues.sales.overflow: no queue 'suport'; did you mean "
         "'queue:support'? (queues: sales, support)"],
        id="overflow-to-missing-queue",
    ),
    pytest.param(
        """
        queues:
          sales:
            overflow: queue:sales
        """,
        ["c.yaml:3:15: queues.sales.overflow: queue 'sales' cannot send its callers to "
         "itself; name another queue, a flow, an extension or a mailbox (queue:<name>, "
         "flow:<name>, extension:<number> or voicemail:<box>), or null"],
        id="overflow-to-itself",
    ),
    pytest.param(
        """
        queues:
          sales: {overflow: "voicemail:201"}
        """,
        ["c.yaml:2:21: queues.sales.overflow: no mailbox '201' (mailboxes: one per agent id, "
         "one per queue and those under voicemail.boxes: sales)"],
        id="voicemail-box-missing",
    ),
    pytest.param(
        """
        queues:
          sales: {exit_to: extension:201}
        """,
        ['c.yaml:2:20: queues.sales.exit_to: set exit_key too: the key a caller presses to '
         'leave the queue, e.g. exit_key: "0"'],
        id="exit-to-without-exit-key",
    ),
    pytest.param(
        """
        queues:
          sales:
            penalty_rules:
              - {after_s: 0, max_penalty: 0}
              - {after_s: 60, max_penalty: 2}
              - {after_s: 30, max_penalty: 1}
        """,
        ["c.yaml:6:19: queues.sales.penalty_rules[2].after_s: penalty rules must be sorted "
         "by after_s, each later than the one before: 30 s is not after the 60 s of "
         "queues.sales.penalty_rules[1] (line 5)"],
        id="unsorted-penalty-rules",
    ),
    pytest.param(
        """
        queues:
          sales:
            penalty_rules:
              - {after_s: 0, min_penalty: 2, max_penalty: 1}
        """,
        ["c.yaml:4:35: queues.sales.penalty_rules[0]: min_penalty 2 is above max_penalty 1; "
         "the rule would match no agent (min_penalty <= max_penalty)"],
        id="min-above-max",
    ),
    pytest.param(
        """
        queues: {sales: {}}
        routes:
          - {dnis: "8001", to: queue:sale}
        """,
        ["c.yaml:3:24: routes[0].to: no queue 'sale'; did you mean 'queue:sales'? "
         "(queues: sales)"],
        id="route-to-missing-queue",
    ),
    pytest.param(
        """
        routes:
          - to: queue:sales
        """,
        ["c.yaml:2:9: routes[0].to: no queue 'sales' (queues: none are defined)"],
        id="route-to-queue-without-queues",
    ),
    pytest.param(
        """
        queues:
          sales:
            greeting: zh/queue_greting
        """,
        ["c.yaml:3:15: queues.sales.greeting: prompt 'zh/queue_greting': {prompts}/zh/"
         "queue_greting.wav does not exist (nor .mp3, .ogg, .flac, .aiff); did you mean "
         "'zh/queue_greeting'?"],
        id="missing-greeting-prompt",
    ),
    pytest.param(
        """
        queues:
          sales:
            periodic: [zh/queue_periodic, fr/queue_periodic]
            periodic_every_s: 30
        """,
        ["c.yaml:3:35: queues.sales.periodic[1]: prompt 'fr/queue_periodic': {prompts}/fr/"
         "queue_periodic.wav does not exist (nor .mp3, .ogg, .flac, .aiff): the folder "
         "{prompts}/fr does not exist"],
        id="missing-prompt-in-a-list",
    ),
    pytest.param(
        """
        queues:
          sales: {overflow: group:sales}
        """,
        ["c.yaml:2:21: queues.sales.overflow: 'group:sales' cannot take a caller out of a "
         "queue; use queue:<name>, flow:<name>, extension:<number> or voicemail:<box>"],
        id="overflow-to-a-group",
    ),
    pytest.param(
        """
        queues:
          sales: {overflow: flow:mian}
        """,
        ["c.yaml:2:21: queues.sales.overflow: no flow 'mian': flows/mian.yaml does not exist; "
         "did you mean 'flow:main'? (flows in flows: main)"],
        id="overflow-to-missing-flow",
    ),
    pytest.param(
        """
        queues:
          sales: {exit_key: "0", exit_to: extension:299}
        """,
        ["c.yaml:2:35: queues.sales.exit_to: no extension 299 on the board; extensions are "
         "201-208"],
        id="exit-to-missing-extension",
    ),
    pytest.param(
        """
        queues:
          sales: {exit_key: "0"}
        """,
        ["c.yaml:2:21: queues.sales.exit_key: set exit_to too: where a caller who presses "
         "'0' goes (queue:<name>, flow:<name>, extension:<number> or voicemail:<box>)"],
        id="exit-key-without-exit-to",
    ),
    pytest.param(
        """
        queues:
          a: {exit_key: "12", exit_to: flow:main}
          b: {exit_key: 0, exit_to: flow:main}
        """,
        ['c.yaml:2:17: queues.a.exit_key: expected one key 0-9, * or # in quotes, e.g. "0"; '
         "got '12'",
         'c.yaml:3:17: queues.b.exit_key: expected text, got the number 0; put it in quotes, '
         'e.g. "0"'],
        id="bad-exit-key",
    ),
    pytest.param(
        """
        queues:
          sales: {periodic: zh/queue_periodic}
          support: {periodic_every_s: 30}
        """,
        ["c.yaml:2:21: queues.sales.periodic: set periodic_every_s too (the seconds between "
         "two periodic announcements), or the prompt never plays",
         "c.yaml:3:31: queues.support.periodic_every_s: there is no periodic prompt to play; "
         "set periodic (a prompt name) or null"],
        id="periodic-half-set",
    ),
    pytest.param(
        """
        queues:
          sales: {ring_timeout_s: 0, wrapup_s: -1, max_len: 0, rona_after: -1}
        """,
        ["c.yaml:2:27: queues.sales.ring_timeout_s: must be greater than 0, got 0",
         "c.yaml:2:40: queues.sales.wrapup_s: must be at least 0, got -1",
         "c.yaml:2:53: queues.sales.max_len: must be at least 1, got 0",
         "c.yaml:2:68: queues.sales.rona_after: must be at least 0, got -1"],
        id="out-of-range-times",
    ),
    pytest.param(
        """
        queues:
          sales:
            language: fr
            announce_position_every_s: 30
        """,
        ["c.yaml:3:15: queues.sales.language: the text 'fr' is not allowed; use 'zh' or 'en'"],
        id="unknown-language",
    ),
    pytest.param(
        """
        queues:
          "sales desk": {}
        agents:
          - {id: "10 01", seat: supervisr, queues: {x: -1}, weight: 0}
        """,
        ["c.yaml:2:3: queue name 'sales desk' is not valid; use 1-64 letters, digits, '.', "
         "'_', '-' or '@'",
         "c.yaml:4:10: agents[0].id: '10 01' is not a valid name; use 1-64 letters, digits, "
         "'.', '_', '-' or '@'",
         "c.yaml:4:25: agents[0].seat: unknown seat 'supervisr'; did you mean 'supervisor'? "
         "(use one of normal, expert, supervisor)",
         "c.yaml:4:48: agents[0].queues.x: must be at least 0, got -1",
         "c.yaml:4:61: agents[0].weight: must be greater than 0, got 0"],
        id="bad-names-seat-penalty-weight",
    ),
    pytest.param(
        """
        agents:
          - {id: "1001", login: true}
          - {name: Bob}
        """,
        ["c.yaml:2:25: agents[0].login: an agent logged in at start needs an extension (the "
         "phone its calls ring); set extension or login: false",
         "c.yaml:3:5: missing required key 'id' in agents[1] (the agent's id, unique, "
         'e.g. "1001")'],
        id="login-without-extension-and-missing-id",
    ),
    pytest.param(
        """
        queues: [sales]
        agents: {id: "1001"}
        """,
        ["c.yaml:1:9: queues: expected a mapping of queue name to queue, got a list",
         "c.yaml:2:9: agents: expected a list, got a mapping"],
        id="wrong-section-shapes",
    ),
    pytest.param(
        """
        queues: [sales]
        agents:
          - {id: a, queues: {sales: 0}}
        routes:
          - to: queue:sales
        """,
        # Which queues exist is not known, so nothing is blamed for naming one.
        ["c.yaml:1:9: queues: expected a mapping of queue name to queue, got a list"],
        id="queues-not-a-mapping-blames-no-one-else",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_acd_config_is_reported_at_the_place_to_fix(home, text, expected):
    prompts = str(home / "prompts")
    assert _problems(home, text) == [e.replace("{prompts}", prompts) for e in expected]


def test_missing_position_prompts_are_named_at_the_key_that_asks_for_them(home):
    (home / "prompts" / "en" / "queue_position_after.wav").unlink()
    (home / "prompts" / "en" / "say" / "7.wav").unlink()
    assert _problems(home, "queues:\n  sales: {language: en, announce_position_every_s: 30}\n") == [
        "c.yaml:2:52: queues.sales.announce_position_every_s: announcing the position needs 2 "
        f"prompt(s) that are not in {home / 'prompts'}: en/queue_position_after, en/say/7 (set "
        "it to null for no announcement)"
    ]


def test_a_broken_queue_body_still_counts_as_defined(home):
    """A route or an agent naming a queue whose body has errors is not blamed too."""
    assert _problems(home, """
        queues:
          sales: {strategy: ringall, colour: blue}
        agents:
          - {id: a, queues: {sales: 0}}
        routes:
          - {to: queue:sales}
        """) == ["c.yaml:2:30: unknown key 'colour' in queues.sales; known keys: strategy, "
                 "ring_timeout_s, wrapup_s, max_wait_s, max_len, overflow, join_empty, "
                 "leave_empty, vip_priority, sticky_wait_s, rona_after, service_level_s, "
                 "penalty_rules, music, language, greeting, announce_position_every_s, "
                 "announce_wait, periodic, periodic_every_s, exit_key, exit_to, callback, record"]


def test_every_acd_problem_is_reported_at_once_in_file_order(home):
    problems = _problems(home, """
        queues:
          sales: {strategy: fastest, overflow: queue:sales}
        agents:
          - {id: "1001", extension: 299, queues: {sals: 0}}
        routes:
          - to: queue:nope
        """)
    assert [p.split(": ", 2)[:2] for p in problems] == [
        ["c.yaml:2:21", "queues.sales.strategy"],
        ["c.yaml:2:40", "queues.sales.overflow"],   # checked although the strategy is bad
        ["c.yaml:4:29", "agents[0].extension"],
        ["c.yaml:4:43", "agents[0].queues"],
        ["c.yaml:6:9", "routes[0].to"],
    ]


# --- the shipped config ------------------------------------------------------------


def test_shipped_config_has_the_demo_queues_and_agents():
    cfg = load_config(REPO / "config.yaml")
    acd = cfg.acd
    assert list(acd.queues) == ["sales", "support"]
    assert [a.agent_id for a in acd.agents] == [str(n) for n in range(1001, 1009)]
    assert [a.extension for a in acd.agents] == list(range(201, 209))
    assert all(a.login for a in acd.agents)
    sales, support = acd.queues["sales"], acd.queues["support"]
    assert sales.strategy is Strategy.LONGEST_IDLE and support.strategy is Strategy.ROUND_ROBIN
    assert sales.overflow == Target(TargetKind.QUEUE, "support") and sales.max_wait_s == 180
    assert sales.wrapup_s == 5 and sales.sticky_wait_s == 10
    assert sales.penalty_rules == (PenaltyRule(0.0, 0, 0), PenaltyRule(30.0, 0, 1))
    assert sales.greeting == (REPO / "prompts" / "zh" / "queue_greeting.wav",)
    assert sales.announce_position_every_s == 30 and len(sales.position_files) == 20
    assert sales.music
    # The chain ends in support's mailbox.
    assert support.max_wait_s == 600 and support.overflow == Target(TargetKind.VOICEMAIL, "support")
    assert support.callback is not None and support.callback.key == "2"
    members = {q: {a.agent_id: a.queues[q] for a in acd.agents if q in a.queues}
               for q in acd.queues}
    assert members == {
        "sales": {"1001": 0, "1002": 0, "1003": 0, "1004": 0, "1005": 1, "1006": 1},
        "support": {"1005": 0, "1006": 0, "1007": 0, "1008": 0},
    }


def test_announce_wait_builds_the_minutes_and_needs_the_position(tmp_path):
    from switchd.config import load_config
    cfg_text = (
        'queues:\n'
        '  q:\n'
        '    announce_position_every_s: 30\n'
        '    announce_wait: true\n'
        '    language: en\n'
        '  r:\n'
        '    announce_wait: true\n'
        "media: {prompts_dir: " + str(Path(__file__).resolve().parent.parent / "prompts") + "}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(cfg_text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [
        f"{path}:7:20: queues.r.announce_wait: the estimated wait is said with the position; "
        "set announce_position_every_s"]
    path.write_text(cfg_text.replace("  r:\n    announce_wait: true\n", ""))
    q = load_config(path).acd.queues["q"]
    assert len(q.wait_files) == 30
    assert [f.name for f in q.wait_files[11]] == [
        "queue_wait_before.wav", "12.wav", "queue_wait_after.wav"]


def test_check_warns_about_queues_overflowing_into_each_other_in_a_loop(tmp_path):
    from switchd.config import config_warnings, load_config
    path = tmp_path / "c.yaml"
    path.write_text(
        "queues:\n"
        "  a: {max_wait_s: 60, overflow: queue:b}\n"
        "  b: {max_wait_s: 60, overflow: queue:c}\n"
        "  c: {max_wait_s: 60, overflow: queue:a}\n"
        "  d: {max_wait_s: 60, overflow: queue:a}\n"
        "agents: [{id: x, extension: 201, queues: {a: 0, b: 0, c: 0, d: 0}}]\n")
    loops = [w for w in config_warnings(load_config(path)) if "go round" in w]
    assert loops == [f"{path}:2:33: warning: queues.a.overflow: callers who wait too long go "
                     "round a -> b -> c -> a, each queue starting their max_wait_s again, so "
                     "a caller may wait for ever; end the chain (a flow, an extension, or null)"]


def test_a_queue_with_an_invalid_key_still_has_its_other_keys_checked(home):
    """Every problem at once: a bad strategy does not hide a missing prompt or a bad
    overflow in the same queue, and the invalid exit_key is not reported twice (no
    "set exit_key too" for its exit_to)."""
    problems = _problems(home, """
        queues:
          sales:
            strategy: longest_idel
            greeting: zh/no_such_prompt
            overflow: queue:nosuch
            exit_key: 5
            exit_to: queue:support
          support: {}
        agents:
          - {id: a, queues: {sales: 0, support: 0}}
        """)
    keys = [p.split(": ", 2)[1] for p in problems]
    assert keys == ["queues.sales.strategy", "queues.sales.greeting", "queues.sales.overflow",
                    "queues.sales.exit_key"]


def test_an_invalid_position_interval_is_not_reported_again_by_announce_wait(home):
    problems = _problems(home, """
        queues:
          sales: {announce_position_every_s: -5, announce_wait: true}
        agents:
          - {id: a, queues: {sales: 0}}
        """)
    assert [p.split(": ", 2)[1] for p in problems] == ["queues.sales.announce_position_every_s"]
