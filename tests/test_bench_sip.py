"""`switchd bench sip`: the output's shape and meaning on a few calls (not its speed)."""

from __future__ import annotations

import json

from switchd.__main__ import main


def test_bench_sip_prints_set_up_media_and_loss_figures_as_json(capsys) -> None:
    code = main(["bench", "sip", "--calls", "6", "--seconds", "1.5", "--rate", "50", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["passed"] else 1)
    assert out["calls"] == out["established"] == out["cdrs"] == 6
    assert out["setup_ms"]["n"] == 6 and out["setup_per_s"] > 0
    # Every call carried RTP both ways for the window: ~50 packets a second each.
    assert out["client_rx_packets"] > 6 * 50 and out["switch_rx_packets"] > 6 * 50
    assert out["client_lost"] == 0 and out["switch_lost"] == 0
    assert 0 < out["rtf"] < 1 and out["frames_skipped"] == 0 and out["daemon_exit"] == 0


def test_bench_sip_rejects_nonsense(capsys) -> None:
    assert main(["bench", "sip", "--calls", "0", "--json"]) == 2
    assert "--calls" in capsys.readouterr().err
