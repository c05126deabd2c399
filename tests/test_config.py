"""Typed config loading with FILE:LINE:COL errors (switchd.config, switchd.yamlloc)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from switchd import config as config_module
from switchd.acd.model import RingGroup, RingStrategy
from switchd.config import (
    Config,
    config_summary,
    default_config,
    demo_secret_users,
    is_loopback,
    load_config,
    parse_config,
    parse_listen,
)
from switchd.core.routing import Route, Target, TargetKind
from switchd.exceptions import ConfigError
from switchd.passwords import hash_secret
from switchd.yamlloc import compose_located

REPO = Path(__file__).resolve().parent.parent
HASH = hash_secret("not-demo", iterations=1000)


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write YAML to tmp_path/c.yaml and chdir there, so FILE in messages is 'c.yaml'."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str, name: str = "c.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return name

    return _write


@pytest.fixture
def problems(write):
    """Load the text and return ConfigError.problems (the load must fail)."""

    def _problems(text: str) -> list[str]:
        name = write(text)
        with pytest.raises(ConfigError) as info:
            load_config(name)
        assert str(info.value) == "\n".join(info.value.problems)
        return info.value.problems

    return _problems


# --- the shipped config -------------------------------------------------------


def test_shipped_config_loads_with_the_demo_setup():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.board.trunks == 8
    assert cfg.board.extension_numbers == tuple(range(201, 209))
    assert cfg.board.tone_plan == "cn"
    assert cfg.ring_groups["sales"] == RingGroup(
        "sales", RingStrategy.RINGALL, (201, 202, 203, 204), 20.0
    )
    assert cfg.ring_groups["support"] == RingGroup(
        "support", RingStrategy.HUNT, (205, 206, 207, 208), 10.0
    )
    assert [str(r.target) for r in cfg.routes] == [
        "flow:main",
        "group:support",
        "extension:201",
        "busy",
        "group:sales",
    ]
    assert cfg.routes[3].trunk == 8 and cfg.routes[3].dnis is None
    assert cfg.routes[4].trunk is None and cfg.routes[4].dnis is None
    users = {u.name: u for u in cfg.users}
    assert set(users) == {"admin", "super1", "crm", *(f"agent{i}" for i in range(1, 8))}
    assert users["admin"].role == "admin"
    assert users["super1"].role == "supervisor"
    assert users["crm"].role == "crm"
    assert users["agent3"].extension == 203 and users["agent3"].role == "agent"
    assert all(u.secret.startswith("pbkdf2_sha256$600000$") for u in cfg.users)
    assert cfg.cti.listen == "127.0.0.1:7070" and is_loopback(cfg.cti.host)
    assert cfg.state_dir == REPO / "state"
    assert cfg.sim.traffic.enabled and cfg.sim.traffic.calls_per_minute == 5
    assert cfg.sim.traffic.seed is None
    assert cfg.sim.bots.mode == "auto" and cfg.sim.bots.answer_after_s == 3
    assert cfg.sim.bots.talk_s == (10.0, 30.0)
    assert cfg.sim.caller_talk_s == (60.0, 180.0) and cfg.sim.caller_patience_s == 120.0


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted keys of a raw model and the models nested in it (lists and groups as ``*``)."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        nested = getattr(field.annotation, "model_fields", None)
        if nested is not None:
            keys |= _model_keys(field.annotation, f"{prefix}{name}.")
    return keys


def _file_keys(node: object, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(prefix + str(key))
            keys |= _file_keys(value, f"{prefix}{key}.")
    return keys


def test_shipped_config_sets_every_key_of_the_schema():
    doc = compose_located((REPO / "config.yaml").read_text(encoding="utf-8"), "config.yaml")
    assert set(doc.data) == set(config_module._SECTIONS)
    m = config_module
    sections = {"board": m._RawBoard, "dialplan": m._RawDialplan, "cti": m._RawCti,
                "log": m._RawLog, "sim": m._RawSim, "media": m._RawMedia}
    for section, model in sections.items():
        assert _model_keys(model) <= _file_keys(doc.data[section]), section
    entries = {"ring_groups": (m._RawGroup, doc.data["ring_groups"].values()),
               "routes": (m._RawRoute, doc.data["routes"]),
               "users": (m._RawUser, doc.data["users"]),
               "queues": (m._RawQueue, doc.data["queues"].values()),
               "penalty_rules": (m._RawPenaltyRule, doc.data["queues"]["sales"]["penalty_rules"]),
               "agents": (m._RawAgent, doc.data["agents"])}
    for section, (model, items) in entries.items():
        present = set().union(*(set(item) for item in items))
        assert set(model.model_fields) <= present, section


def test_shipped_config_demo_users_are_flagged_as_demo():
    cfg = load_config(REPO / "config.yaml")
    # Only check two users: each check costs a 600 000-iteration PBKDF2 run.
    few = dataclasses.replace(cfg, users=cfg.users[:2])
    assert demo_secret_users(few) == ("admin", "super1")


def test_config_summary_is_one_line():
    cfg = load_config(REPO / "config.yaml")
    assert config_summary(cfg) == (
        f"{REPO / 'config.yaml'}: ok — 8 trunks, 8 extensions (201-208), 5 routes, "
        "2 ring groups, 2 queues, 8 agents, 10 users, cti 127.0.0.1:7070"
    )


def test_config_summary_uses_singular_and_compresses_ranges():
    cfg = parse_config(
        """
board: {trunks: 1, extensions: [{number: 201}, {number: 202}, {number: 205}]}
ring_groups: {sales: {members: [201]}}
routes: [{to: busy}]
""",
        Path("x.yaml"),
    )
    assert config_summary(cfg) == (
        "x.yaml: ok — 1 trunk, 3 extensions (201-202, 205), 1 route, 1 ring group, "
        "0 queues, 0 agents, 0 users, cti 127.0.0.1:7070"
    )


# --- defaults -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_empty_or_comment_only_file_gives_all_defaults(text, write):
    cfg = load_config(write(text))
    assert cfg == dataclasses.replace(Config(), source=Path("c.yaml"))
    assert cfg.board.extension_numbers == tuple(range(201, 209))
    assert cfg.dialplan.outside_prefix == "9"
    assert cfg.cti.host == "127.0.0.1" and cfg.cti.port == 7070
    assert cfg.sim.bots.talk_s == (20.0, 90.0)


def test_default_config_matches_an_empty_file():
    assert default_config() == Config()


def test_sections_with_every_line_commented_out_mean_defaults(write):
    cfg = load_config(
        write(
            """
            board:
            ring_groups:
            routes:
            users:
            sim:
              bots:
              traffic:
            state_dir:
            """
        )
    )
    assert cfg == dataclasses.replace(Config(), source=Path("c.yaml"))


# --- YAML level ---------------------------------------------------------------


def test_only_true_and_false_are_booleans():
    doc = compose_located("a: yes\nb: No\nc: on\nd: OFF\ne: TRUE\nf: false\ng: y\n", "t")
    assert doc.data == {
        "a": "yes",
        "b": "No",
        "c": "on",
        "d": "OFF",
        "e": True,
        "f": False,
        "g": "y",
    }


def test_enabled_yes_is_a_type_error_naming_the_key(problems):
    assert problems(
        """
        sim:
          traffic:
            enabled: yes
        """
    ) == [
        "c.yaml:3:14: sim.traffic.enabled: expected true or false, got the text 'yes'; "
        "only true and false are booleans in this file"
    ]


def test_yaml_syntax_error_reports_the_problem_mark(problems):
    assert problems(
        """
        board:
          trunks: [8
        cti: {}
        """
    ) == [
        "c.yaml:3:4: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 2)"
    ]


def test_tab_indentation_is_a_syntax_error_at_the_tab(problems):
    (message,) = problems("board:\n\ttrunks: 8\n")
    assert message.startswith("c.yaml:2:1: YAML syntax error: found character '\\t'")


def test_duplicate_key_is_reported_at_the_second_one_with_other_problems(problems):
    assert problems(
        """
        board:
          trunks: 8
          tone_plan: cn
          trunks: 4
        log:
          level: loud
        """
    ) == [
        "c.yaml:4:3: duplicate key 'trunks' (first given at line 2); remove one of them",
        "c.yaml:6:10: log.level: the text 'loud' is not allowed; "
        "use 'debug', 'info', 'warning' or 'error'",
    ]


def test_merge_keys_may_override_without_a_duplicate_error():
    doc = compose_located("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "t")
    assert doc.problems == ()
    assert doc.data["m"] == {"x": 1, "y": 3}


def test_not_utf8_is_reported_with_its_position(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_bytes(b"board:\n  tone_plan: c\xffn\n")
    with pytest.raises(ConfigError) as info:
        load_config("c.yaml")
    assert info.value.problems == ["c.yaml:2:15: the file is not UTF-8 text (byte 0xff)"]


def test_missing_file_is_one_problem(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == [
        f"{missing}: cannot read the config file: No such file or directory"
    ]


def test_top_level_must_be_a_mapping(problems):
    assert problems("- board\n- cti\n") == [
        "c.yaml:1:1: the file must be a mapping of sections (board, dialplan, ring_groups, "
        "queues, agents, routes, users, cti, log, state_dir, sim, media, ivr, recording, voicemail, sip), got a list"
    ]


# --- shape errors -------------------------------------------------------------


def test_unknown_key_suggests_the_close_match(problems):
    assert problems(
        """
        board:
          trunkz: 8
        """
    ) == ["c.yaml:2:3: unknown key 'trunkz' in board; did you mean 'trunks'?"]


def test_unknown_key_without_a_close_match_lists_the_known_keys(problems):
    assert problems(
        """
        log:
          colour: red
        """
    ) == ["c.yaml:2:3: unknown key 'colour' in log; known keys: format, level"]


def test_unknown_top_level_key_suggests_the_section(problems):
    assert problems("cti: {}\nrouts: []\n") == [
        "c.yaml:2:1: unknown key 'routs' at the top level; did you mean 'routes'?"
    ]


def test_unknown_key_in_a_list_entry_points_at_that_key(problems):
    assert problems(
        f"""
        users:
          - name: bob
            role: agent
            secret: "{HASH}"
            extention: 201
        """
    ) == ["c.yaml:5:5: unknown key 'extention' in users[0]; did you mean 'extension'?"]


def test_missing_required_key_points_at_the_entry_that_lacks_it(problems):
    assert problems(
        f"""
        users:
          - name: bob
            secret: "{HASH}"
        """
    ) == [
        "c.yaml:2:5: missing required key 'role' in users[0] (one of agent, supervisor, crm, admin)"
    ]


def test_wrong_type_names_the_key_and_what_was_found(problems):
    assert problems(
        """
        board:
          trunks: eight
          extensions: 8.5
        """
    ) == [
        "c.yaml:2:11: board.trunks: expected a whole number, got the text 'eight'",
        "c.yaml:3:15: board.extensions: expected a count (e.g. 8) or a list of entries "
        "like {number: 201, name: Alice}",
    ]


def test_numbers_are_not_taken_from_quoted_text(problems):
    assert problems('dialplan:\n  ring_timeout_s: "20"\n') == [
        "c.yaml:2:19: dialplan.ring_timeout_s: expected a number, got the text '20'"
    ]


def test_out_of_range_number_says_the_limit(problems):
    assert problems("board:\n  trunks: 0\n  extensions: 10001\n") == [
        "c.yaml:2:11: board.trunks: must be at least 1, got 0",
        "c.yaml:3:15: board.extensions: must be at most 10000, got 10001",
    ]


def test_unquoted_dnis_asks_for_quotes(problems):
    assert problems(
        """
        routes:
          - dnis: 8000
            to: busy
        """
    ) == [
        "c.yaml:2:11: routes[0].dnis: expected text, got the number 8000; "
        'put it in quotes, e.g. "8000"'
    ]


def test_talk_range_must_be_min_then_max(problems):
    assert problems("sim:\n  bots:\n    talk_s: [90, 20]\n  outside:\n    talk_s: [5]\n") == [
        "c.yaml:3:13: sim.bots.talk_s: expected [min, max] with min <= max, got [90, 20]",
        "c.yaml:5:13: sim.outside.talk_s: expected [min, max] (two numbers of seconds)",
    ]


def test_several_problems_are_all_reported_in_file_order(problems):
    found = problems(
        f"""
        board:
          tone_plan: uk
        dialplan:
          ring_timeout_s: -1
        routes:
          - to: group:nope
        users:
          - name: a
            role: boss
            secret: "{HASH}"
        cti:
          listen: "127.0.0.1:70000"
        bogus: 1
        """
    )
    assert [p.split(": ", 1)[0] for p in found] == [
        "c.yaml:2:14",
        "c.yaml:4:19",
        "c.yaml:6:9",
        "c.yaml:9:11",
        "c.yaml:12:11",
        "c.yaml:13:1",
    ]


# --- board, dialplan ----------------------------------------------------------


def test_extension_list_gives_numbers_and_names(write):
    cfg = load_config(
        write(
            """
            board:
              extensions:
                - {number: 305, name: Carol}
                - {number: 301, name: Alice}
                - {number: 302}
            """
        )
    )
    assert cfg.board.extension_numbers == (301, 302, 305)
    assert dict(cfg.board.extension_names) == {301: "Alice", 305: "Carol"}


def test_extension_count_starts_at_first_extension(write):
    cfg = load_config(write("board: {extensions: 3, first_extension: 100}\n"))
    assert cfg.board.extension_numbers == (100, 101, 102)
    assert cfg.board.trunk_numbers == tuple(range(1, 9))


def test_duplicate_extension_in_list_is_reported_at_the_second(problems):
    assert problems(
        """
        board:
          extensions:
            - number: 201
            - number: 202
            - number: 201
        """
    ) == ["c.yaml:5:15: duplicate extension number 201 (already listed at line 3)"]


def test_missing_extension_number_in_list(problems):
    assert problems("board:\n  extensions:\n    - name: Alice\n") == [
        "c.yaml:3:7: missing required key 'number' in board.extensions[0] (the extension number)"
    ]


def test_outside_prefix_clash_is_reported_at_the_prefix(problems):
    assert problems(
        """
        board:
          first_extension: 200
        dialplan:
          outside_prefix: "20"
        """
    ) == [
        "c.yaml:4:19: dialplan.outside_prefix '20' is ambiguous: extension(s) 200-207 start "
        "with it, so dialling them would look like an outside call; change the prefix or "
        "renumber the extensions"
    ]


def test_default_outside_prefix_clash_points_at_the_clashing_extension(problems):
    (message,) = problems(
        """
        board:
          extensions:
            - number: 201
            - number: 901
        """
    )
    assert message.startswith(
        "c.yaml:4:15: dialplan.outside_prefix '9' (the default) is ambiguous: extension(s) 901"
    )


# --- ring groups and routes ---------------------------------------------------


def test_ring_group_members_must_be_on_the_board_and_listed_once(problems):
    assert problems(
        """
        ring_groups:
          sales:
            members: [201, 299, 201]
        """
    ) == [
        "c.yaml:3:20: ring_groups.sales.members[1]: 299 is not an extension on the board "
        "(extensions: 201-208)",
        "c.yaml:3:25: ring_groups.sales.members[2]: extension 201 is listed twice",
    ]


def test_ring_group_needs_members(problems):
    assert problems("ring_groups:\n  sales:\n    strategy: hunt\n  support: {members: []}\n") == [
        "c.yaml:3:5: missing required key 'members' in ring_groups.sales "
        "(list the extension numbers to ring, e.g. [201, 202])",
        "c.yaml:4:22: ring_groups.support.members: needs at least 1 item(s)",
    ]


def test_route_to_missing_extension_names_the_extensions(problems):
    assert problems(
        """
        routes:
          - dnis: "8200"
            to: extension:299
        """
    ) == ["c.yaml:3:9: routes[0].to: no extension 299 on the board; extensions are 201-208"]


def test_route_to_unknown_group_suggests_and_lists_groups(problems):
    assert problems(
        """
        ring_groups:
          sales: {members: [201]}
          support: {members: [202]}
        routes:
          - to: group:salse
        """
    ) == [
        "c.yaml:5:9: routes[0].to: no ring group 'salse'; did you mean 'group:sales'? "
        "(ring groups: sales, support)"
    ]


def test_route_to_an_unsupported_kind_names_what_exists(problems):
    # Routes to queues: tests/test_config_acd.py.
    assert problems(
        """
        ring_groups:
          sales: {members: [201]}
        queues:
          support: {}
        routes:
          - to: number:84001234
        """
    ) == [
        "c.yaml:6:9: routes[0].to: unknown target kind 'number' in 'number:84001234' (an "
        "outside number is a transfer target in a flow, not a route); use "
        "extension:<number> (201-208), group:<name> (sales), flow:<name>, "
        "queue:<name> (support), voicemail:<box> or busy"
    ]


def test_route_to_a_missing_flow_names_the_file_and_the_flows_there(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text("start: x\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("routes:\n  - to: flow:mian\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.problems == [
        f"{cfg}:2:9: routes[0].to: no flow 'mian': flows/mian.yaml does not exist; "
        "did you mean 'flow:main'? (flows in flows: main)"
    ]


def test_route_to_a_flow_in_the_configured_flows_dir(tmp_path):
    (tmp_path / "ivr").mkdir()
    (tmp_path / "ivr" / "hotline.yaml").write_text("start: x\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ivr: {flows_dir: ivr}\nroutes:\n  - to: flow:hotline\n")
    loaded = load_config(cfg)
    assert loaded.ivr.flows_dir == tmp_path / "ivr"
    assert [str(r.target) for r in loaded.routes] == ["flow:hotline"]


def test_route_trunk_must_exist_on_the_board(problems):
    assert problems("board: {trunks: 4}\nroutes:\n  - {trunk: 5, to: busy}\n") == [
        "c.yaml:3:13: routes[0].trunk: trunk 5 does not exist; the board has trunks 1-4"
    ]


def test_routes_keep_their_order_and_match_first(write):
    cfg = load_config(
        write(
            """
            routes:
              - {dnis: "8000", trunk: 2, to: extension:202}
              - {dnis: "8000", to: extension:201}
              - {to: busy}
            """
        )
    )
    assert all(isinstance(r, Route) for r in cfg.routes)
    first = next(r for r in cfg.routes if r.matches("8000", 2))
    assert first.target == Target(TargetKind.EXTENSION, "202")
    assert next(r for r in cfg.routes if r.matches("8000", 1)).target == Target(
        TargetKind.EXTENSION, "201"
    )
    assert next(r for r in cfg.routes if r.matches("123", 1)).target == Target(TargetKind.BUSY)


@pytest.mark.parametrize("text", ["extension:201", "group:sales", "busy"])
def test_target_prints_back_as_written(text):
    assert str(Target.parse(text)) == text


@pytest.mark.parametrize("text", ["extension:", "extension:abc", "busy:now", "group:", "x"])
def test_target_parse_rejects_bad_grammar(text):
    with pytest.raises(ValueError):
        Target.parse(text)


# --- users --------------------------------------------------------------------


def test_plain_text_secret_tells_the_user_to_run_passwd_without_echoing_it(problems):
    (message,) = problems(
        """
        users:
          - name: bob
            role: agent
            secret: hunter2
        """
    )
    assert message == (
        "c.yaml:4:13: users[0].secret: is not a password hash; run `switchd passwd` and paste "
        "the line it prints (plain-text secrets are not accepted)"
    )
    assert "hunter2" not in message


def test_numeric_secret_is_not_echoed(problems):
    (message,) = problems("users:\n  - {name: bob, role: agent, secret: 123456}\n")
    assert "123456" not in message and message.startswith("c.yaml:2:38: users[0].secret:")


def test_duplicate_user_name_and_extension_are_reported(problems):
    assert problems(
        f"""
        users:
          - name: bob
            role: agent
            secret: "{HASH}"
            extension: 201
          - name: bob
            role: agent
            secret: "{HASH}"
            extension: 201
        """
    ) == [
        "c.yaml:6:11: users[1].name: duplicate user name 'bob' (first at line 2)",
        "c.yaml:9:16: users[1].extension: duplicate extension number 201: user 'bob' already "
        "has it (line 5)",
    ]


def test_user_extension_must_be_on_the_board(problems):
    assert problems(
        f"""
        users:
          - name: bob
            role: agent
            secret: "{HASH}"
            extension: 299
        """
    ) == [
        "c.yaml:5:16: users[0].extension: 299 is not an extension on the board "
        "(extensions: 201-208)"
    ]


def test_demo_secrets_are_detected_only_for_demo_users():
    demo = hash_secret("demo-admin", iterations=1000)
    cfg = parse_config(
        f"""
users:
  - {{name: a, role: admin, secret: "{demo}"}}
  - {{name: b, role: agent, secret: "{HASH}"}}
""",
        Path("x.yaml"),
    )
    assert demo_secret_users(cfg) == ("a",)


# --- cti ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1:70000", "port 70000 is out of range; expected 0..65535 (0 = any free port)"),
        ("127.0.0.1:abc", "port 'abc' is not a number; expected 0..65535"),
        ("127.0.0.1", "expected HOST:PORT, e.g. 127.0.0.1:7070, got '127.0.0.1'"),
        ("::1:7070", "put an IPv6 address in brackets, e.g. [::1]:7070"),
        ("[zz]:7070", "'zz' in brackets is not an IPv6 address"),
    ],
)
def test_bad_listen_address_says_what_is_wrong(problems, listen, message):
    assert problems(f'cti:\n  listen: "{listen}"\n') == [f"c.yaml:2:11: cti.listen: {message}"]


@pytest.mark.parametrize(
    ("listen", "host", "port", "loopback"),
    [
        ("127.0.0.1:7070", "127.0.0.1", 7070, True),
        ("[::1]:0", "::1", 0, True),
        ("localhost:7070", "localhost", 7070, True),
        ("0.0.0.0:7070", "0.0.0.0", 7070, False),
        ("[2001:db8::1]:65535", "2001:db8::1", 65535, False),
    ],
)
def test_listen_is_split_into_host_and_port(write, listen, host, port, loopback):
    assert parse_listen(listen) == (host, port)
    cfg = load_config(write(f'cti: {{listen: "{listen}"}}\n'))
    assert (cfg.cti.host, cfg.cti.port, cfg.cti.listen) == (host, port, listen)
    assert is_loopback(cfg.cti.host) is loopback


# --- paths --------------------------------------------------------------------


def test_relative_state_dir_is_resolved_against_the_config_directory(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "switchd.yaml").write_text("state_dir: ../var/switchd\n", encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config("../etc/switchd.yaml")
    assert cfg.state_dir == tmp_path / "var" / "switchd"
    assert cfg.state_dir.is_absolute()
    assert cfg.source == Path("../etc/switchd.yaml")


def test_absolute_state_dir_is_kept(tmp_path):
    cfg = parse_config(f'state_dir: "{tmp_path / "data"}"\n', Path("/somewhere/c.yaml"))
    assert cfg.state_dir == tmp_path / "data"


def test_parse_config_names_the_source_in_messages():
    with pytest.raises(ConfigError) as info:
        parse_config("log:\n  level: loud\n", Path("conf/x.yaml"))
    assert info.value.problems[0].startswith("conf/x.yaml:2:10: log.level:")


def test_a_typo_in_board_does_not_hide_a_route_to_a_missing_extension(problems):
    assert problems("board:\n  trunkz: 8\nroutes:\n  - to: extension:299\n") == [
        "c.yaml:2:3: unknown key 'trunkz' in board; did you mean 'trunks'?",
        "c.yaml:4:9: routes[0].to: no extension 299 on the board; extensions are 201-208",
    ]


# --- one loopback test, one demo-secret check ------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("2001:db8::1", False),
        ("switch.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_accepts_only_addresses_no_other_machine_can_reach(host, loopback):
    assert is_loopback(host) is loopback


def _demo_config(tmp_path, *, demo: bool = True) -> Config:
    secret = hash_secret("demo" if demo else "not-demo", iterations=1000)
    path = tmp_path / "d.yaml"
    path.write_text(
        f'users:\n  - {{name: boss, role: admin, secret: "{secret}"}}\n'
        f'  - {{name: ann, role: agent, extension: 201, secret: "{secret}"}}\n'
    )
    return load_config(path)


def test_demo_secrets_are_refused_beyond_loopback_with_one_message_naming_users_and_host(tmp_path):
    cfg = _demo_config(tmp_path)
    message = config_module.demo_secret_problem(cfg, "0.0.0.0")
    assert message == (
        f"{cfg.source}: users boss, ann still have the demo secrets of the shipped config.yaml, "
        "and the control socket would listen on 0.0.0.0, which is not a loopback address, so "
        "anyone who can reach it could log in with them; set real secrets with `switchd passwd` "
        "or listen on 127.0.0.1"
    )
    assert "would listen on [2001:db8::1]," in config_module.demo_secret_problem(cfg, "2001:db8::1")


def test_demo_secrets_on_loopback_are_allowed_without_hashing_anything(tmp_path, monkeypatch):
    cfg = _demo_config(tmp_path)

    def expensive(_: str) -> bool:
        raise AssertionError("no PBKDF2 run is needed on loopback")

    monkeypatch.setattr(config_module, "uses_demo_secret", expensive)
    for host in ("127.0.0.1", "::1", "localhost"):
        assert config_module.demo_secret_problem(cfg, host) is None


def test_real_secrets_may_listen_anywhere(tmp_path):
    cfg = _demo_config(tmp_path, demo=False)
    assert config_module.demo_secret_problem(cfg, "0.0.0.0") is None


# --- simulator keys ---------------------------------------------------------------


def test_simulated_caller_talk_time_and_patience_have_defaults(write):
    cfg = load_config(write("sim: {}\n"))
    assert cfg.sim.caller_talk_s == (60.0, 180.0)
    assert cfg.sim.caller_patience_s == 60.0
    cfg = load_config(write("sim:\n  caller_talk_s: [5, 7.5]\n  caller_patience_s: 12\n"))
    assert cfg.sim.caller_talk_s == (5.0, 7.5) and cfg.sim.caller_patience_s == 12.0


def test_simulated_caller_keys_are_validated_like_the_others(problems):
    assert problems(
        """
        sim:
          caller_talk_s: [90, 20]
          caller_patience_s: 0
        """
    ) == [
        "c.yaml:2:18: sim.caller_talk_s: expected [min, max] with min <= max, got [90, 20]",
        "c.yaml:3:22: sim.caller_patience_s: must be greater than 0, got 0",
    ]
    assert problems("sim:\n  caller_talk_s: [5]\n  caller_patience_s: -1\n") == [
        "c.yaml:2:18: sim.caller_talk_s: expected [min, max] (two numbers of seconds)",
        "c.yaml:3:22: sim.caller_patience_s: must be greater than 0, got -1",
    ]
    assert problems('sim:\n  caller_patience_s: "60"\n  caller_talk_s: [1, -2]\n') == [
        "c.yaml:2:22: sim.caller_patience_s: expected a number, got the text '60'",
        "c.yaml:3:22: sim.caller_talk_s[1]: must be at least 0, got -2",
    ]


# --- files the config names ---------------------------------------------------------


def _wav(path: Path, seconds: float = 0.1) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(int(seconds * 8000) * 2))
    return path


def test_speech_file_that_cannot_be_played_is_an_error_at_its_key(problems, tmp_path):
    (tmp_path / "speech.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    assert problems(
        """
        sim:
          audio:
            callers: speech
            speech_file: speech.wav
        log: {level: loud}
        """
    ) == [
        f"c.yaml:4:18: sim.audio.speech_file: {tmp_path / 'speech.wav'}: corrupt WAV: no 'fmt ' "
        "chunk; re-export it as 16-bit PCM WAV",
        "c.yaml:5:14: log.level: the text 'loud' is not allowed; use 'debug', 'info', 'warning' "
        "or 'error'",
    ]


def test_missing_speech_file_names_the_folder_and_a_close_match(problems, tmp_path):
    _wav(tmp_path / "speech.wav")
    (message,) = problems("sim:\n  audio:\n    speech_file: speach.wav\n")
    assert message.startswith(f"c.yaml:3:18: sim.audio.speech_file: {tmp_path / 'speach.wav'}: ")
    assert "did you mean speech.wav?" in message


def test_playable_speech_file_is_resolved_against_the_config_file(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    _wav(conf / "speech.wav")
    (conf / "c.yaml").write_text("sim:\n  audio: {speech_file: speech.wav}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("etc/c.yaml").sim.audio.speech_file == conf / "speech.wav"


def test_marks_take_no_part_in_comparing_configs(write):
    a = load_config(write("# the board\nboard: {trunks: 8}\n"))
    b = load_config(write("board: {trunks: 8}\n"))
    assert a == b and a.marks != b.marks


# --- warnings -------------------------------------------------------------------------


def test_shipped_config_has_no_warning():
    assert config_module.config_warnings(load_config(REPO / "config.yaml")) == []


def test_missing_prompt_and_music_folders_are_warnings_at_their_keys(write, tmp_path):
    cfg = load_config(write("media:\n  prompts_dir: voice\n  moh_dir: voice/moh\n"))
    assert config_module.config_warnings(cfg) == [
        f"c.yaml:2:16: warning: media.prompts_dir: the folder {tmp_path / 'voice'} does not "
        "exist, so no prompt can be found there; copy the prompts folder next to the config "
        "file or set media.prompts_dir to where it is",
        f"c.yaml:3:12: warning: media.moh_dir: {tmp_path / 'voice' / 'moh'}: the music-on-hold "
        "folder does not exist; callers on hold hear the generated chime instead",
    ]


def test_default_folders_that_are_missing_name_the_file_without_a_position(write, tmp_path):
    warnings = config_module.config_warnings(load_config(write("")))
    assert [w.split(": warning: ")[0] for w in warnings] == ["c.yaml", "c.yaml"]
    assert str(tmp_path / "prompts") in warnings[0] and str(tmp_path / "prompts" / "moh") in warnings[1]


def test_no_music_folder_is_no_warning(write, tmp_path):
    (tmp_path / "prompts").mkdir()
    assert config_module.config_warnings(load_config(write("media: {moh_dir: null}\n"))) == []


def test_each_music_file_that_cannot_be_played_is_a_warning_naming_it(write, tmp_path):
    moh = tmp_path / "prompts" / "moh"
    moh.mkdir(parents=True)
    _wav(moh / "1-good.wav")
    (moh / "2-broken.wav").write_bytes(b"not audio at all")
    (moh / "README.md").write_text("ignored")
    cfg = load_config(write("media:\n  moh_dir: prompts/moh\n"))
    assert config_module.config_warnings(cfg) == [
        f"c.yaml:2:12: warning: media.moh_dir: {moh / '2-broken.wav'}: is not a WAV (RIFF/WAVE) "
        "file (it starts with b'not audio at'); re-export it as 16-bit PCM WAV; the file is "
        "skipped"
    ]


def test_an_agent_without_an_extension_is_a_warning(write, tmp_path):
    (tmp_path / "prompts" / "moh").mkdir(parents=True)
    cfg = load_config(
        write(
            f"""
            users:
              - {{name: sup, role: supervisor, secret: "{HASH}"}}
              - name: bob
                role: agent
                secret: "{HASH}"
              - {{name: ann, role: agent, extension: 201, secret: "{HASH}"}}
            """
        )
    )
    assert config_module.config_warnings(cfg) == [
        "c.yaml:3:5: warning: users[1]: agent 'bob' has no extension, so no call can be offered "
        "to them and they can answer none; set users[1].extension to the number of their phone"
    ]


def test_a_route_to_a_flow_name_no_flow_file_can_have_is_refused_at_the_route(problems):
    assert problems("routes:\n  - to: flow:9x@y\n") == [
        "c.yaml:2:9: routes[0].to: '9x@y' cannot be a flow name: flow names (the file name "
        "without .yaml) use ASCII letters, digits, '_', '.' and '-', starting with a letter or '_'"
    ]
