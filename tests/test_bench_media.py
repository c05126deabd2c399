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


def test_bench_media_feeds_g711_and_reports_the_far_end_apart(capsys):
    assert main(["bench", "media", "--channels", "100", "--seconds", "0.4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Nine channels in ten in pairs, the rest in groups of three: a conference and a
    # monitored call here.
    assert (out["conferences"], out["monitored"]) == (1, 1)
    assert 0 < out["far_end_ms_per_frame"] and 0 < out["ms_per_frame_p50"] <= out["ms_per_frame_p99"]
    assert out["bytes_per_channel"] > 0 and out["max_channels"] is None


def test_the_feed_hands_over_decoded_speech_and_music_and_encodes_what_lines_hear():
    import numpy as np

    from switchd.bench_media import G711Feed
    from switchd.lines import g711

    t = np.arange(8000) / 8000.0
    speech = (5000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    music = (5000 * np.sin(2 * np.pi * 660 * t)).astype(np.int16)
    feed = G711Feed(np.array([False, True]), speech, music)
    got = feed.inbound(3, 0.0)
    assert got.shape == (2, 160) and got.dtype == np.int16
    # Each line's frame is a 20 ms slice of its own source through a G.711 round trip.
    for row, src in ((0, speech), (1, music)):
        frames = g711.ulaw_decode(g711.ulaw_encode(src)).reshape(-1, 160)
        assert any(np.array_equal(got[row], f) for f in frames)
    feed.outbound(3, 0.0, got)
    assert np.array_equal(feed.sent, g711.ulaw_encode(got))
