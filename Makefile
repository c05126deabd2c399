# switchd — two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench check clean speech-tools dtmf-tools chromium baresip prompts

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start switchd on the simulated board with demo traffic (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/switchd run -c config.yaml

## test: ruff, then the whole test suite (speech tools, DTMF decoders, chromium and baresip
## first, when they can be installed)
test: $(STAMP) speech-tools dtmf-tools chromium baresip
	$(BIN)/ruff check switchd tests tools
	$(BIN)/pytest

## speech-tools: espeak-ng and sox for the DTMF talk-off test on speech, ffmpeg for the
## prompt formats decoded through pydub (AIFF, MP3, OGG, …), graphviz so the test of
## `switchd flows draw --format dot` renders the diagram; optional — installed with
## apt-get when running as root, otherwise the tests that need them skip and say why
speech-tools:
	@command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 && command -v dot >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox ffmpeg graphviz >/dev/null) ; } || \
	  echo "note: espeak-ng/sox/ffmpeg/graphviz not installed; the tests that need them will be skipped"

## dtmf-tools: the Debian DTMF decoders that `switchd bench dtmf` compares switchd with
## (multimon-ng, dtmf2num; libspandsp2 for spandsp's dtmf_rx); optional — installed with
## apt-get when running as root, otherwise their columns say "not installed" and the
## tests that need them skip and say why
dtmf-tools:
	@command -v multimon-ng >/dev/null 2>&1 && command -v dtmf2num >/dev/null 2>&1 && \
	  { ldconfig -p 2>/dev/null | grep -q 'libspandsp\.so\.2'; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq multimon-ng dtmf2num libspandsp2 >/dev/null) ; } || \
	  echo "note: multimon-ng/dtmf2num/libspandsp2 not installed (as root: apt-get install multimon-ng dtmf2num libspandsp2); the DTMF comparison's columns for them say so and their tests skip"

## chromium: headless Chromium and a CJK font (WenQuanYi Micro Hei) for the test that renders
## `switchd report --format html` and checks its screenshot and page text; optional — installed
## with apt-get when running as root, otherwise that test skips and says why
chromium:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	  fc-list 2>/dev/null | grep -qiE 'wenquanyi|noto sans cjk|source han sans' || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) ; } || \
	  echo "note: chromium/fonts-wqy-microhei not installed (as root: apt-get install chromium fonts-wqy-microhei); the HTML report's browser test will be skipped"

## baresip: Debian's headless SIP softphone, the real peer of the SIP board's tests (it registers,
## answers, sends RFC 4733 keys); optional — installed with apt-get when running as root,
## otherwise those tests skip and say why
baresip:
	@command -v baresip >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends baresip-core >/dev/null) ; } || \
	  echo "note: baresip not installed (as root: apt-get install baresip-core); the SIP softphone tests will be skipped"

## prompts: regenerate the IVR prompts (prompts/zh, prompts/en) with espeak-ng; unchanged files stay
prompts: $(STAMP)
	$(BIN)/python tools/make_prompts.py

lint: $(STAMP)
	$(BIN)/ruff check switchd tests tools

check: $(STAMP)
	$(BIN)/switchd check -c config.yaml

## bench: calls per second (core in virtual time, live daemon over the socket), the
## media tick's real-time factor, and the IVR's cost per step and calls in flows with media
bench: $(STAMP)
	$(BIN)/switchd bench calls --json
	$(BIN)/switchd bench calls --live --json
	$(BIN)/switchd bench media --channels 1000 --seconds 10 --json
	$(BIN)/switchd bench ivr --json
	$(BIN)/switchd bench cti --json
	$(BIN)/switchd bench dtmf --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
