"""Typed config loading with FILE:LINE:COL errors (switchd.config, switchd.yamlloc)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from switchd import config as config_module
from switchd.config import (
    Config,
    Target,
    config_summary,
    default_config,
    demo_secret_users,
    load_config,
    parse_config,
    parse_listen,
)
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
    assert cfg.ring_groups["sales"].strategy == "ringall"
    assert cfg.ring_groups["sales"].members == (201, 202, 203, 204)
    assert cfg.ring_groups["support"].strategy == "hunt"
    assert cfg.ring_groups["support"].members == (205, 206, 207, 208)
    assert [str(r.to) for r in cfg.routes] == [
        "group:sales",
        "group:support",
        "extension:201",
        "busy",
        "group:sales",
    ]
    assert cfg.routes[3].trunk == 8 and cfg.routes[3].dnis is None
    assert cfg.routes[4].trunk is None and cfg.routes[4].dnis is None
    users = {u.name: u for u in cfg.users}
    assert set(users) == {"admin", "super1", "crm", *(f"agent{i}" for i in range(1, 9))}
    assert users["admin"].role == "admin"
    assert users["super1"].role == "supervisor"
    assert users["crm"].role == "crm"
    assert users["agent3"].extension == 203 and users["agent3"].role == "agent"
    assert all(u.secret.startswith("pbkdf2_sha256$600000$") for u in cfg.users)
    assert cfg.cti.listen == "127.0.0.1:7070" and cfg.cti.is_loopback
    assert cfg.state_dir == REPO / "state"
    assert cfg.sim.traffic.enabled and cfg.sim.traffic.calls_per_minute == 10
    assert cfg.sim.traffic.seed is None
    assert cfg.sim.bots.mode == "auto" and cfg.sim.bots.answer_after_s == 3
    assert cfg.sim.bots.talk_s == (10.0, 30.0)


def test_shipped_config_sets_every_key_of_the_schema():
    doc = compose_located((REPO / "config.yaml").read_text(encoding="utf-8"), "config.yaml")
    assert set(doc.data) == set(config_module._SECTIONS)
    for path, model in config_module._MODEL_AT.items():
        if path == ("board", "extensions", "*"):
            continue  # the list form is shown in a comment; the demo uses a count
        nodes = [doc.data]
        for part in path:
            if part != "*":
                nodes = [n[part] for n in nodes]
            else:  # every list entry / every ring group
                nodes = [e for n in nodes for e in (n if isinstance(n, list) else n.values())]
        present = set().union(*(set(n) for n in nodes))
        assert set(model.model_fields) <= present, path


def test_shipped_config_demo_users_are_flagged_as_demo():
    cfg = load_config(REPO / "config.yaml")
    # Only check two users: each check costs a 600 000-iteration PBKDF2 run.
    few = dataclasses.replace(cfg, users=cfg.users[:2])
    assert demo_secret_users(few) == ("admin", "super1")


def test_config_summary_is_one_line():
    cfg = load_config(REPO / "config.yaml")
    assert config_summary(cfg) == (
        f"{REPO / 'config.yaml'}: ok — 8 trunks, 8 extensions (201-208), 5 routes, "
        "2 ring groups, 11 users, cti 127.0.0.1:7070"
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
        "0 users, cti 127.0.0.1:7070"
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
        "routes, users, cti, log, state_dir, sim, media), got a list"
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


@pytest.mark.parametrize("target", ["queue:x", "flow:main"])
def test_route_to_an_unsupported_kind_names_what_exists(problems, target):
    assert problems(
        f"""
        ring_groups:
          sales: {{members: [201]}}
        routes:
          - to: {target}
        """
    ) == [
        f"c.yaml:4:9: routes[0].to: unknown target kind {target.split(':')[0]!r} in "
        f"{target!r} (queues and IVR flows cannot be routed to yet); use "
        "extension:<number> (201-208), group:<name> (sales) or busy"
    ]


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
    first = next(r for r in cfg.routes if r.matches("8000", 2))
    assert first.to == Target("extension", "202")
    assert next(r for r in cfg.routes if r.matches("8000", 1)).to == Target("extension", "201")
    assert next(r for r in cfg.routes if r.matches("123", 1)).to == Target("busy")


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
    assert cfg.cti.is_loopback is loopback


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
