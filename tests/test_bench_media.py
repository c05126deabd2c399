"""``switchd bench media`` runs and reports its figures as JSON."""

from __future__ import annotations

import json

from switchd.__main__ import main


def test_bench_media_prints_rtf_json(capsys):
    assert main(["bench", "media", "--channels", "40", "--seconds", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["channels"] == 40 and out["seconds"] == 0.5 and out["frames"] == 25
    assert out["tapped"] == 5 and out["playing"] == 4
    assert out["rtf"] > 0
    assert abs(out["rtf"] - out["wall_s"] / out["seconds"]) < 1e-3


def test_bench_media_rejects_nonsense(capsys):
    assert main(["bench", "media", "--channels", "1", "--json"]) == 2
    assert "channels" in capsys.readouterr().err
