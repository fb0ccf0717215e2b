#!/usr/bin/env bash
# Headless Chromium for the HTML report test (tests/e2e/test_html_browser.py).
# Sourced by .ci/run; installs Debian's `chromium` package when /usr/bin/chromium is absent.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null \
      || echo "setup-chromium: could not install chromium; browser tests will skip" >&2
  else
    echo "setup-chromium: no apt-get; browser tests will skip" >&2
  fi
fi
if [ -x /usr/bin/chromium ]; then
  export WSTRACE_CHROMIUM=/usr/bin/chromium
fi
