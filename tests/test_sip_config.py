"""The sip: section of config.yaml: its checks name FILE:LINE:COL, carriers' channels are
the board's trunks, and demo phone passwords never leave loopback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from switchd.config import demo_secret_problem, load_config
from switchd.drivers.sip.digest import ha1_line, parse_credentials_line
from switchd.exceptions import ConfigError
from switchd.sipconfig import DEMO_SIP_PASSWORD

REPO = Path(__file__).resolve().parents[1]


def _load(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_config(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return [p.split("c.yaml:", 1)[-1] for p in info.value.problems]


def test_carriers_channels_become_the_boards_trunks_numbered_in_file_order(tmp_path: Path) -> None:
    cfg = _load(tmp_path, """
        board: {driver: sip, extensions: 2}
        sip:
          trunks:
            a: {host: 10.0.0.1, channels: 3, dids: {"4930123": "8000"}}
            b: {host: 10.0.0.2, channels: 2}
        """)
    assert cfg.board.trunks == 5
    assert cfg.sip is not None
    assert [(t.name, t.lines) for t in cfg.sip.trunks] == [
        ("a", ("trunk/1", "trunk/2", "trunk/3")), ("b", ("trunk/4", "trunk/5"))]
    assert cfg.sip.trunks[0].dids == {"4930123": "8000"}


def test_each_mistake_in_the_sip_section_is_named_with_its_place_all_at_once(
        tmp_path: Path) -> None:
    got = _problems(tmp_path, """
        board: {driver: sip, extensions: 2, trunks: 4}
        sip:
          listen: 0.0.0.0:5070
          extensions:
            201: {password: "plain"}
            209: {password: "x"}
          trunks:
            a: {host: 10.0.0.1, channels: 3, allow: [nothost], username: u}
        """)
    text = "\n".join(got)
    assert "sip.address: the listen host is a wildcard" in text
    assert "5:21: sip.extensions.201.password: expected 'digest$<realm>$" in text
    assert "switchd passwd --sip" in text
    assert "6:5: sip.extensions.209: not an extension of the board" in text
    assert "sip.trunks.a.allow: 'nothost' is not an IP address" in text
    assert "sip.trunks.a: give both username and password" in text
    assert "board.trunks is 4 but the SIP trunks have 3 channels in all" in text
    unknown = _problems(tmp_path, """
        board: {driver: sip, extensions: 2}
        sip:
          bogus: 1
        """)
    assert len(unknown) == 1 and unknown[0].startswith("3:3:") and "bogus" in unknown[0]


def test_a_password_made_for_another_realm_says_how_to_remake_it(tmp_path: Path) -> None:
    line = ha1_line("201", "other", "pw")
    got = _problems(tmp_path, f"""
        board: {{driver: sip, extensions: 2}}
        sip:
          extensions:
            201: {{password: "{line}"}}
        """)
    assert "made for realm 'other', but sip.realm is 'switchd'" in got[0]
    assert "switchd passwd --sip 201 --realm switchd" in got[0]


def test_demo_phone_passwords_are_refused_beyond_loopback(tmp_path: Path) -> None:
    demo = ha1_line("201", "switchd", DEMO_SIP_PASSWORD)
    text = f"""
        board: {{driver: sip, extensions: 2}}
        sip:
          listen: {{listen}}
          address: 192.0.2.10
          extensions:
            201: {{password: "{demo}"}}
        """
    on_lan = _load(tmp_path, text.replace("{listen}", "0.0.0.0:5070"))
    refusal = demo_secret_problem(on_lan, "127.0.0.1")
    assert refusal is not None and "demo SIP password" in refusal and "201" in refusal
    local = _load(tmp_path, text.replace("{listen}", "127.0.0.1:5070"))
    assert demo_secret_problem(local, "127.0.0.1") is None


def test_the_shipped_config_checks_its_sip_section_and_passwd_prints_a_usable_line() -> None:
    cfg = load_config(REPO / "config.yaml")
    assert cfg.sip is None and cfg.board.driver == "sim"    # checked, used only with sip
    out = subprocess.run([sys.executable, "-m", "switchd", "passwd", "--stdin", "--sip", "205"],
                         input="pw\n", capture_output=True, text=True, check=True).stdout.strip()
    cred = parse_credentials_line("205", out)
    assert cred.realm == "switchd" and cred.ha1_for("MD5") is not None


def test_a_carrier_host_must_be_an_ip_address(tmp_path: Path) -> None:
    got = _problems(tmp_path, """
        board: {driver: sip, extensions: 2}
        sip:
          trunks:
            a: {host: sip.example.com, channels: 1}
        """)
    assert got == ["4:15: sip.trunks.a.host: 'sip.example.com' is not an IP address (carriers "
                   "are matched by the address their requests come from)"]


def test_a_reload_keeps_the_sip_settings_and_says_a_restart_is_needed(tmp_path: Path) -> None:
    from switchd.reload import plan_reload

    text = """
        board: {{driver: sip, extensions: 2}}
        sip:
          rtp_port: {port}
        """
    old = _load(tmp_path, text.format(port=20000))
    new = _load(tmp_path, text.format(port=30000))
    plan = plan_reload(old, new)
    assert "sip" in plan.restart and plan.config.sip == old.sip
